import { readFileSync } from 'node:fs';
import { Compressor } from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import { framedOnce } from './entry-frames.ts';

/**
 * zstd for `compress=true` subscribers: each event becomes one standalone zstd frame made with
 * the active dictionary, whose ID is written in the frame header so a client holding several
 * dictionaries (Jetstream's Go client does) can pick the right one. An event is compressed at
 * most once (entry-frames.ts) and shared by every compressed subscriber.
 */
export class EventCompressor {
  readonly dictionaryId: number;
  readonly #compressor = new Compressor();
  /** This compressor's frame of an entry, made once (entry-frames.ts). */
  readonly compressed = framedOnce('zstd frame', (entry) => this.#compressor.compress(entry.json));

  constructor(
    readonly dictionary: Buffer,
    readonly level = DEFAULT_LEVEL,
  ) {
    this.dictionaryId = binding.getDictIDFromDict(dictionary);
    if (this.dictionaryId === 0) throw new Error('not a zstd dictionary (no dictionary ID)');
    this.#compressor.setParameters({ compressionLevel: level, dictIDFlag: true, contentSizeFlag: true, checksumFlag: false });
    this.#compressor.loadDictionary(dictionary);
  }

  static fromFile(path: string, level?: number): EventCompressor {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      throw new Error(`cannot read the zstd dictionary ${path}: ${(err as Error).message}`);
    }
    try {
      return new EventCompressor(bytes, level);
    } catch (err) {
      throw new Error(`${path}: ${(err as Error).message}`);
    }
  }

  compress(bytes: Uint8Array): Uint8Array {
    return this.#compressor.compress(bytes);
  }
}

/** Chosen by bench/fanout's ratio table: see the README's performance section. */
export const DEFAULT_LEVEL = 3;
