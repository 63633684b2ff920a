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
    super(plain(data), options);
  }

  /** Points the tokenizer at new input, so one instance (and its options) serves every decode. */
  reset(data: Uint8Array): this {
    this.data = plain(data);
    this._pos = 0;
    return this;
  }

  override next(): Token {
    const data = this.data;
    const pos = this._pos;
    const initial = data[pos];
    if (initial === undefined) return super.next(); // cborg reports the end of input
    const minor = initial & 31;
    if (initial >> 5 !== 2 || minor > 26) return super.next();
    let length: number;
    let header: number;
    if (minor < 24) {
      length = minor;
      header = 1;
    } else {
      header = 1 + 2 ** (minor - 24);
      length = 0;
      for (let i = 1; i < header; i++) {
        const byte = data[pos + i];
        if (byte === undefined) throw new Error('CBOR decode error: not enough data for type');
        length = length * 256 + byte;
      }
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

/** A plain Uint8Array view: Buffer's subarray is slower to make. */
function plain(data: Uint8Array): Uint8Array {
  return data instanceof Buffer ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : data;
}

/**
 * cborg's decodeFirst and decode with byte strings as views, for one set of decode options.
 * Decoding is synchronous and never re-entered, so a single tokenizer is reused.
 */
export class ViewDecoder {
  readonly #tokenizer: ViewTokenizer;
  readonly #options: DecodeOptions;

  constructor(options: DecodeOptions) {
    this.#tokenizer = new ViewTokenizer(new Uint8Array(0), options);
    this.#options = { ...options, tokenizer: this.#tokenizer };
  }

  decodeFirst(data: Uint8Array): [unknown, Uint8Array] {
    const [value] = decodeFirst(this.#tokenizer.reset(data).data, this.#options);
    return [value, data.subarray(this.#tokenizer.pos())];
  }

  /** The input must hold exactly one item. */
  decode(data: Uint8Array): unknown {
    const [value, rest] = this.decodeFirst(data);
    if (rest.length > 0) throw new Error('CBOR decode error: too many terminals, data makes no sense');
    return value;
  }
}
