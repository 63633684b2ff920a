import { readFileSync } from 'node:fs';
import { Compressor } from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import type { Entry } from '../events/index.ts';

/**
 * zstd for `compress=true` subscribers: each event becomes one standalone zstd frame made with
 * the active dictionary, whose ID is written in the frame header so a client holding several
 * dictionaries (Jetstream's Go client does) can pick the right one. An event is compressed at
 * most once — the result is kept on the Entry itself (so it goes when the Entry does) and
 * shared by every compressed subscriber.
 */
export class EventCompressor {
  readonly dictionaryId: number;
  readonly #compressor = new Compressor();
  /**
   * The property an entry keeps this compressor's frame under. Not a WeakMap: a WeakMap entry
   * per event cost a compressed replay from disk about a tenth of its CPU (the map's inserts and
   * its ephemeron table in every garbage collection), for a million events kept a few seconds.
   */
  readonly #frame = Symbol('zstd frame');

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

  compressed(entry: Entry): Uint8Array {
    const framed = entry as Entry & { [key: symbol]: Uint8Array | undefined };
    return (framed[this.#frame] ??= this.#compressor.compress(entry.json));
  }

  compress(bytes: Uint8Array): Uint8Array {
    return this.#compressor.compress(bytes);
  }
}

/** Chosen by bench/fanout's ratio table: see the README's performance section. */
export const DEFAULT_LEVEL = 3;
