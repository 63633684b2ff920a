import { Token, Tokenizer, Type, decodeFirst, type DecodeOptions } from 'cborg';

/**
 * cborg's tokenizer, except that byte strings come out as views into the input, not copies.
 * A frame's `blocks` (kilobytes) and every CID link are byte strings, and copying each into a
 * new ArrayBuffer was the largest single cost of decoding a frame. The views keep the frame's
 * buffer alive only while the frame is being processed: nothing downstream keeps them.
 * Everything else — and byte strings of 2^32 bytes or more — is cborg's own decoding.
 */
export class ViewTokenizer extends Tokenizer {
  constructor(data: Uint8Array, options: DecodeOptions) {
    // A plain Uint8Array: Buffer's subarray is slower to make.
    super(data instanceof Buffer ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : data, options);
  }

  override next(): Token {
    const data = this.data;
    const pos = this._pos;
    const initial = data[pos];
    const minor = initial & 31;
    if (initial >> 5 !== 2 || minor > 26) return super.next();
    let length: number;
    let header: number;
    if (minor < 24) {
      length = minor;
      header = 1;
    } else {
      header = 1 + 2 ** (minor - 24);
      if (pos + header > data.length) throw new Error('CBOR decode error: not enough data for type');
      length = 0;
      for (let i = 1; i < header; i++) length = length * 256 + data[pos + i];
      if (this.options.strict && length < (minor === 24 ? 24 : 2 ** (8 * 2 ** (minor - 25)))) {
        throw new Error('CBOR decode error: integer encoded in more bytes than necessary (strict decode)');
      }
    }
    const end = pos + header + length;
    if (end > data.length) throw new Error('CBOR decode error: not enough data for type');
    this._pos = end;
    return new Token(Type.bytes, data.subarray(pos + header, end), header + length);
  }
}

/** cborg's decodeFirst with byte strings as views (see ViewTokenizer). */
export function decodeFirstWithViews(data: Uint8Array, options: DecodeOptions): [unknown, Uint8Array] {
  const tokenizer = new ViewTokenizer(data, options);
  const [value] = decodeFirst(data, { ...options, tokenizer });
  return [value, data.subarray(tokenizer.pos())];
}

/** cborg's decode (the input must hold exactly one item) with byte strings as views. */
export function decodeWithViews(data: Uint8Array, options: DecodeOptions): unknown {
  const [value, rest] = decodeFirstWithViews(data, options);
  if (rest.length > 0) throw new Error('CBOR decode error: too many terminals, data makes no sense');
  return value;
}
