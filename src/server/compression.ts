import { readFileSync } from 'node:fs';
import { Compressor } from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import type { Entry } from '../events/index.ts';

/**
 * zstd for `compress=true` subscribers: each event becomes one standalone zstd frame made with
 * the active dictionary, whose ID is written in the frame header so a client holding several
 * dictionaries (Jetstream's Go client does) can pick the right one. An event is compressed at
 * most once — the result is remembered per Entry (until the Entry is collected) and shared by
 * every compressed subscriber.
 */
export class EventCompressor {
  readonly dictionaryId: number;
  readonly #compressor = new Compressor();
  readonly #frames = new WeakMap<Entry, Uint8Array>();

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
    let frame = this.#frames.get(entry);
    if (frame === undefined) {
      frame = this.#compressor.compress(entry.json);
      this.#frames.set(entry, frame);
    }
    return frame;
  }

  compress(bytes: Uint8Array): Uint8Array {
    return this.#compressor.compress(bytes);
  }
}

/** Chosen by bench/fanout's ratio table: see the README's performance section. */
export const DEFAULT_LEVEL = 3;
