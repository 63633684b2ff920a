import { DropError } from './drop.ts';

/**
 * The blocks of a commit's CAR v1 slice, located but not decoded: a list of byte ranges.
 *
 * Why not @ipld/car's CarBufferReader: it decodes the header and builds a CID object for every
 * block, and a commit's CAR is mostly MST nodes we never read — that was a third of ingest's
 * time. Here each block's CID is compared in place with the CIDs the ops name. What a block
 * *claims* to be matters little: its bytes are hashed and checked against the op's CID before
 * use (messages.ts), so a lying CAR can only make an op drop, never slip through.
 */
export class CarSlice {
  /** [cidStart, cidEnd, dataEnd] per block; the data starts at cidEnd. */
  readonly #ranges: number[] = [];
  /** The header's DAG-CBOR bytes (`{version, roots}`), not decoded here. */
  readonly header: Uint8Array;

  constructor(readonly bytes: Uint8Array) {
    const headerLength = readVarint(bytes, 0);
    const headerPrefix = varintBytes;
    let offset = headerPrefix + headerLength;
    if (headerLength === 0 || offset > bytes.length) throw new DropError('bad_car', 'CAR header is empty or truncated');
    this.header = bytes.subarray(headerPrefix, offset);
    while (offset < bytes.length) {
      const sectionLength = readVarint(bytes, offset);
      const cidStart = offset + varintBytes;
      const sectionEnd = cidStart + sectionLength;
      if (sectionEnd > bytes.length) throw new DropError('bad_car', 'CAR block runs past the end of the slice');
      const cidEnd = cidStart + cidLength(bytes, cidStart);
      if (cidEnd > sectionEnd) throw new DropError('bad_car', 'CAR block is shorter than its CID');
      this.#ranges.push(cidStart, cidEnd, sectionEnd);
      offset = sectionEnd;
    }
  }

  get blockCount(): number {
    return this.#ranges.length / 3;
  }

  /** The data of the block whose CID bytes equal `cid`, or undefined. */
  find(cid: Uint8Array): Uint8Array | undefined {
    const { bytes } = this;
    const ranges = this.#ranges;
    // #ranges holds whole triples, so i, i + 1 and i + 2 are always in range.
    for (let i = 0; i < ranges.length; i += 3) {
      const start = ranges[i]!;
      const cidEnd = ranges[i + 1]!;
      if (cidEnd - start !== cid.length) continue;
      let same = true;
      for (let j = cid.length - 1; j >= 0; j--) {
        if (bytes[start + j] !== cid[j]) {
          same = false;
          break;
        }
      }
      if (same) return bytes.subarray(cidEnd, ranges[i + 2]);
    }
    return undefined;
  }
}

/** Length of the binary CIDv1 at `offset`: version, codec, then a multihash (code, length, digest). */
function cidLength(bytes: Uint8Array, offset: number): number {
  const version = readVarint(bytes, offset);
  if (version !== 1) throw new DropError('bad_car', `CAR block CID version ${version} (atproto uses CIDv1)`);
  let at = offset + varintBytes;
  readVarint(bytes, at); // codec
  at += varintBytes;
  readVarint(bytes, at); // multihash code
  at += varintBytes;
  const digestLength = readVarint(bytes, at);
  return at + varintBytes + digestLength - offset;
}

/** How many bytes the varint readVarint read last took (a variable, not a tuple: a commit's CAR has dozens). */
let varintBytes = 0;

/** An unsigned LEB128 varint (multiformats' encoding) at offset; sets varintBytes. */
function readVarint(bytes: Uint8Array, offset: number): number {
  let value = 0;
  for (let i = 0; i < 8; i++) {
    const byte = bytes[offset + i];
    if (byte === undefined) throw new DropError('bad_car', 'CAR slice ends inside a varint');
    value += (byte & 0x7f) * 2 ** (7 * i);
    if (byte < 0x80) {
      varintBytes = i + 1;
      return value;
    }
  }
  throw new DropError('bad_car', 'CAR slice has a varint longer than 8 bytes');
}
