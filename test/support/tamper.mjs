// Corruptions of real subscribeRepos frames, for proving that verification rejects them: each
// takes a decoded #commit body (as @ipld/dag-cbor decodes it) and returns a changed copy that a
// hostile or broken relay could send. Plain JavaScript so both the unit tests (tsx) and the
// end-to-end relay (plain node) use the same code.
import { CarBufferReader, CarBufferWriter } from '@ipld/car';
import * as dagCbor from '@ipld/dag-cbor';
import { decodeFirst } from 'cborg';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';

function readCar(bytes) {
  const reader = CarBufferReader.fromBytes(bytes);
  return { roots: reader.getRoots(), blocks: reader.blocks() };
}

function writeCar(roots, blocks) {
  const size = CarBufferWriter.headerLength({ roots }) + blocks.reduce((sum, b) => sum + CarBufferWriter.blockLength(b), 0);
  const writer = CarBufferWriter.createWriter(new ArrayBuffer(size), { roots });
  for (const block of blocks) writer.write(block);
  return writer.close();
}

async function cidOf(bytes) {
  return CID.createV1(dagCbor.code, await sha256.digest(bytes));
}

/** The commit re-signed with garbage: a well-formed commit block whose signature is wrong. */
export async function withBadSignature(body) {
  const { blocks } = readCar(body.blocks);
  const original = blocks.find((b) => b.cid.equals(body.commit));
  const commit = dagCbor.decode(original.bytes);
  const sig = Uint8Array.from(commit.sig);
  sig[10] ^= 0xff;
  const bytes = dagCbor.encode({ ...commit, sig });
  const cid = await cidOf(bytes);
  const rest = blocks.filter((b) => !b.cid.equals(body.commit));
  return { ...body, commit: cid, blocks: writeCar([cid], [{ cid, bytes }, ...rest]) };
}

/** `prevData` pointing elsewhere: the ops no longer lead from it to the new root. */
export function withWrongPrevData(body) {
  return { ...body, prevData: body.commit };
}

/** One MST node of the proof left out of the CAR. */
export function withMissingProofNode(body) {
  const { roots, blocks } = readCar(body.blocks);
  const commit = dagCbor.decode(blocks.find((b) => b.cid.equals(body.commit)).bytes);
  return { ...body, blocks: writeCar(roots, blocks.filter((b) => !b.cid.equals(commit.data))) };
}

/** The frame's rev changed (the signed commit still says the real one). */
export function withWrongRev(body) {
  const last = body.rev.at(-1) === '2' ? '3' : '2';
  return { ...body, rev: body.rev.slice(0, -1) + last };
}

/** An update or delete stripped of `prev`. */
export function withoutPrev(body) {
  return { ...body, ops: body.ops.map(({ prev, ...op }) => op) };
}

/** A subscribeRepos frame's header and body, as @ipld/dag-cbor decodes them. */
export function decodeFrame(bytes) {
  const [header, rest] = decodeFirst(bytes, dagCbor.decodeOptions);
  return { header, body: dagCbor.decode(rest) };
}

export function encodeCommitFrame(body) {
  return Buffer.concat([dagCbor.encode({ op: 1, t: '#commit' }), dagCbor.encode(body)]);
}
