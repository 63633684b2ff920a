/**
 * A growable byte buffer that events are written into, reused from event to event: an event's
 * JSON is assembled here as bytes and copied out once, at its exact size (take), instead of
 * being built as strings and encoded again. Its parts may be written out of order: `length` may be
 * set back or ahead, to write before what is written or after it.
 */
export class ByteWriter {
  buffer: Buffer = Buffer.allocUnsafe(64 * 1024);
  length = 0;

  /** Room for `bytes` more bytes at `length`. Growing keeps the whole buffer: parts written past `length` (set back to write before them) stay. */
  reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes));
    this.buffer.copy(grown);
    this.buffer = grown;
  }

  byte(value: number): void {
    this.reserve(1);
    this.buffer[this.length++] = value;
  }

  /** Text known to be ASCII (syntax-checked identifiers, digits, fixed JSON): one byte per character. */
  ascii(text: string): void {
    this.reserve(text.length);
    const { buffer } = this;
    let at = this.length;
    for (let i = 0; i < text.length; i++) buffer[at++] = text.charCodeAt(i);
    this.length = at;
  }

  /** A non-negative integer below 10^16 (a time_us), in decimal. */
  digits(value: number): void {
    const count = decimalDigits(value);
    this.reserve(count);
    const { buffer } = this;
    const start = this.length;
    this.length += count;
    // Two halves of at most 8 digits each keep the arithmetic in 32-bit integers.
    let high = Math.floor(value / 1e8);
    let low = value - high * 1e8;
    let at = start + count;
    for (let i = 0; i < 8 && at > start; i++) {
      buffer[--at] = 0x30 + (low % 10);
      low = (low / 10) | 0;
    }
    for (; at > start; high = (high / 10) | 0) buffer[--at] = 0x30 + (high % 10);
  }

  /** Any text, as UTF-8. */
  utf8(text: string): void {
    this.reserve(text.length * 3);
    this.length += this.buffer.write(text, this.length, 'utf8');
  }

  bytes(source: Uint8Array, start = 0, end = source.length): void {
    this.reserve(end - start);
    if (end - start < 64) {
      // Keys and short strings: a loop costs less than the view set() needs.
      const { buffer } = this;
      let at = this.length;
      for (let i = start; i < end; i++) buffer[at++] = source[i]!;
    } else {
      this.buffer.set(source.subarray(start, end), this.length);
    }
    this.length += end - start;
  }

  /** A copy of bytes start..length, in a buffer of its own size. */
  take(start: number): Buffer {
    const out = Buffer.allocUnsafe(this.length - start);
    out.set(this.buffer.subarray(start, this.length));
    return out;
  }
}

/** How many decimal digits `value` (a non-negative integer) is written with. */
export function decimalDigits(value: number): number {
  let count = 1;
  for (let bound = 10; value >= bound; bound *= 10) count++;
  return count;
}
