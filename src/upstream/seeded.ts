/**
 * Seeded made-up values. The demo upstream's synthetic network (demo.ts) and the tests'
 * synthetic firehose (test/support/synthetic.ts) draw from these: the same seed, the same
 * sequence, so the same bytes (contrail's zstd dictionary was trained on the tests' stream).
 */

/** A seeded pseudo-random generator (mulberry32): the same seed, the same sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const TID_ALPHABET = '234567abcdefghijklmnopqrstuvwxyz';

/** Draws from mulberry32(seed): numbers in [0, 1), one of a list, runs of base32 letters. */
export class SeededRandom {
  readonly #next: () => number;

  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }

  next(): number {
    return this.#next();
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.#next() * items.length)];
    if (item === undefined) throw new Error('cannot pick from an empty list');
    return item;
  }

  /** `n` lowercase base32 letters (the alphabet of did:plc identifiers). */
  chars(n: number): string {
    let out = '';
    for (let i = 0; i < n; i++) out += BASE32.charAt(Math.floor(this.#next() * 32));
    return out;
  }
}

/** A TID-shaped string for a number, increasing with it (made-up revs and record keys). */
export function tidFor(n: number): string {
  let value = BigInt(1_700_000_000_000_000 + n) << 10n;
  let out = '';
  for (let i = 0; i < 13; i++) {
    out = TID_ALPHABET.charAt(Number(value & 31n)) + out;
    value >>= 5n;
  }
  return out;
}
