import { createHash } from 'node:crypto';
import type { Database, RootDatabase } from 'lmdb';
import { Compressor } from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import { DamagedStateError, decoded, shown } from './stored-state.ts';

/**
 * The zstd dictionaries the buffer's blocks were compressed with, kept inside the buffer itself.
 * Each block records the store-local number of its dictionary (not zstd's dictionary ID: a
 * retrained dictionary may keep the ID with other contents), and the dictionary's bytes live in
 * the `dictionaries` database under that number. So changing `--zstd-dictionary` never makes
 * old blocks unreadable: new blocks use the new dictionary, old ones keep theirs. Number 0 is
 * "no dictionary". Each stored dictionary is checked when the buffer is opened: one that does not
 * decode, or whose bytes no longer hash to its SHA-256 (changed on disk), is a DamagedStateError
 * (stored-state.ts), since every block compressed with it would read as damaged.
 */
interface StoredDictionary {
  zstdId: number;
  sha256: string;
  bytes: Buffer;
}

/**
 * Measured on bench/day-events' mix, blocks of 1,024 split by collection, with the dictionary:
 * level 1 gives 136 B/event at 3.5 CPU-µs/event, level 3 138 B at 6.9 µs, level 6 143 B at
 * 12 µs (the events' entropy is mostly CIDs and TIDs, which no level squeezes). One event per
 * frame at level 3: 178 B at 8.2 µs.
 */
const BLOCK_LEVEL = 1;

export class Dictionaries {
  readonly #db: Database<StoredDictionary, number>;
  readonly #decompressors = new Map<number, InstanceType<typeof binding.DCtx>>();
  readonly #compressor = new Compressor();
  /** The number new blocks are compressed with. */
  readonly current: number;

  constructor(root: RootDatabase, dictionary: Buffer | undefined, writable: boolean) {
    this.#db = root.openDB<StoredDictionary, number>({ name: 'dictionaries' });
    this.#compressor.setParameters({ compressionLevel: BLOCK_LEVEL, dictIDFlag: true, contentSizeFlag: true, checksumFlag: true });
    const stored = this.#checked();
    this.current = dictionary && writable ? this.#numberOf(dictionary, stored) : 0;
    if (this.current !== 0) this.#compressor.loadDictionary(dictionary!);
  }

  /** Dictionary `number` for a log line: its zstd ID and the start of its SHA-256 (none: number 0). */
  describe(number: number): { zstdId: number; sha256: string } | 'none' {
    const stored = number === 0 ? undefined : this.#db.get(number);
    return stored ? { zstdId: stored.zstdId, sha256: stored.sha256.slice(0, 16) } : 'none';
  }

  compress(bytes: Buffer): Buffer {
    return this.#compressor.compress(bytes);
  }

  /**
   * Decompresses a block frame made with dictionary `number` into bytes `allocate` gives (by the
   * size the frame's header states); a frame that fails its checksum throws. `frame` is read
   * only after `read` returns it, once the dictionary is loaded: read may hand out LMDB's
   * reused buffer (getBinaryFast), which loading a dictionary would overwrite.
   */
  decompress<Out extends { bytes: Buffer }>(read: () => Uint8Array, number: number, allocate: (size: number) => Out): Out {
    const context = this.#decompressor(number);
    const frame = read();
    const size = binding.getFrameContentSize(frame);
    // Every block frame states its size (contentSizeFlag); anything else is not one of ours.
    if (size === null) throw new Error('a block frame without its content size');
    const out = allocate(size);
    const written = context.decompress(out.bytes, frame);
    if (written !== size) throw new Error(`a block frame decompressed to ${written} bytes, not the ${size} its header states`);
    return out;
  }

  #decompressor(number: number): InstanceType<typeof binding.DCtx> {
    let decompressor = this.#decompressors.get(number);
    if (!decompressor) {
      decompressor = new binding.DCtx();
      if (number !== 0) {
        const stored = this.#db.get(number);
        if (!stored) throw new Error(`a block names zstd dictionary #${number}, which this buffer does not hold`);
        decompressor.loadDictionary(stored.bytes);
      }
      this.#decompressors.set(number, decompressor);
    }
    return decompressor;
  }

  /** The stored dictionaries' numbers and SHA-256s, each checked against its bytes. */
  #checked(): Map<number, string> {
    const checked = new Map<number, string>();
    for (const number of this.#db.getKeys()) {
      const value = decoded(this.#db, 'dictionaries', number);
      const { zstdId, sha256, bytes } = (value ?? {}) as Partial<Record<keyof StoredDictionary, unknown>>;
      if (!Number.isSafeInteger(number) || number < 1 || !Number.isSafeInteger(zstdId) || typeof sha256 !== 'string' || !(bytes instanceof Uint8Array)) {
        throw new DamagedStateError('dictionaries', number, `is not a stored dictionary (it reads ${shown(value)})`);
      }
      if (createHash('sha256').update(bytes).digest('hex') !== sha256) {
        throw new DamagedStateError('dictionaries', number, `(zstd ID ${zstdId}) no longer matches its SHA-256 ${sha256.slice(0, 16)}…: its bytes changed`);
      }
      checked.set(number, sha256);
    }
    return checked;
  }

  /** The store-local number of this dictionary, adding it if the buffer does not hold it yet. */
  #numberOf(dictionary: Buffer, stored: Map<number, string>): number {
    const sha256 = createHash('sha256').update(dictionary).digest('hex');
    let last = 0;
    for (const [number, storedSha256] of stored) {
      if (storedSha256 === sha256) return number;
      last = number;
    }
    const zstdId = binding.getDictIDFromDict(dictionary);
    this.#db.putSync(last + 1, { zstdId, sha256, bytes: dictionary });
    return last + 1;
  }
}
