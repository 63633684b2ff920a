import { readFileSync } from 'node:fs';
import binding from 'zstd-napi/binding.js';
import type { Entry } from '../events/index.ts';

/** Frames kept per chunk: the events whose sequence numbers share seq / CHUNK_EVENTS. */
const CHUNK_EVENTS = 256;
/** Chunks kept, the least recently made dropped first: the frames of the last ~32k sequence numbers compressed subscribers were sent (~6 MB here: chunks of up to 64 KiB for frames of the network's sizes). */
const CHUNKS_KEPT = 128;
/** A chunk's first buffer; it doubles while it is too small (256 frames of ~190 B fill 64 KiB). */
const CHUNK_START_BYTES = 16 * 1024;

/** The frames of up to CHUNK_EVENTS consecutive sequence numbers, side by side in one buffer. */
class FrameChunk {
  bytes = Buffer.allocUnsafeSlow(CHUNK_START_BYTES);
  used = 0;
  /** Frame i is bytes[bounds[2i], bounds[2i + 1]); an empty range: not made yet (a zstd frame is never empty). */
  readonly bounds = new Int32Array(2 * CHUNK_EVENTS);
  /** Frame i's event's time_us: a sequence number names an event only within one store. */
  readonly timeUs = new Float64Array(CHUNK_EVENTS);

  /** Makes room for `bytes` more: a larger buffer (frames handed out before keep the old one). */
  reserve(bytes: number): void {
    if (this.bytes.length - this.used >= bytes) return;
    let size = this.bytes.length * 2;
    while (size - this.used < bytes) size *= 2;
    const grown = Buffer.allocUnsafeSlow(size);
    this.bytes.copy(grown, 0, 0, this.used);
    this.bytes = grown;
  }
}

/**
 * zstd for `compress=true` subscribers: each event becomes one standalone zstd frame made with
 * the active dictionary, whose ID is written in the frame header so a client holding several
 * dictionaries (Jetstream's Go client does) can pick the right one. An event is compressed at
 * most once while its frame is kept, and shared by every compressed subscriber.
 *
 * Frames are kept by the event's sequence number, a chunk of consecutive ones to a buffer, not
 * one Buffer each on the Entry: twenty replays keep their events alive for a second or so, and a
 * frame object per event (with the property holding it) was a fifth of what survived the
 * gateway's young-generation collections, each survivor copied by every one of them
 * (bench/replay-live --survivors). The frames handed out are views of a chunk, never written
 * again: a transport that queues them (`ws`) keeps them intact.
 */
export class EventCompressor {
  readonly dictionaryId: number;
  readonly #context = new binding.CCtx();
  readonly #chunks = new Map<number, FrameChunk>();
  #scratch = Buffer.alloc(0);

  constructor(
    readonly dictionary: Buffer,
    readonly level = DEFAULT_LEVEL,
  ) {
    this.dictionaryId = binding.getDictIDFromDict(dictionary);
    if (this.dictionaryId === 0) throw new Error('not a zstd dictionary (no dictionary ID)');
    const { CParameter } = binding;
    this.#context.setParameter(CParameter.compressionLevel, level);
    this.#context.setParameter(CParameter.dictIDFlag, 1);
    this.#context.setParameter(CParameter.contentSizeFlag, 1);
    this.#context.setParameter(CParameter.checksumFlag, 0);
    this.#context.loadDictionary(dictionary);
  }

  /** Chunks of frames held now: at most CHUNKS_KEPT. */
  get keptChunks(): number {
    return this.#chunks.size;
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

  /**
   * The entry's frame, kept by its sequence number: meant for one store's events (a server's, a
   * replay worker's), though an event of another store with the same number is told apart by its
   * time_us and compressed anew. An entry without a sequence number is compressed each time.
   */
  readonly compressed = (entry: Entry): Uint8Array => {
    const { seq } = entry;
    if (seq === undefined) return this.compress(entry.json);
    const id = Math.floor(seq / CHUNK_EVENTS);
    const slot = seq - id * CHUNK_EVENTS;
    const at = 2 * slot;
    let chunk = this.#chunks.get(id);
    if (chunk === undefined) {
      this.#chunks.set(id, (chunk = new FrameChunk()));
      if (this.#chunks.size > CHUNKS_KEPT) this.#chunks.delete(this.#chunks.keys().next().value!);
    } else if (chunk.bounds[at + 1] !== 0 && chunk.timeUs[slot] === entry.timeUs) {
      return chunk.bytes.subarray(chunk.bounds[at], chunk.bounds[at + 1]);
    }
    chunk.reserve(binding.compressBound(entry.json.length));
    const start = chunk.used;
    chunk.used += this.#context.compress2(chunk.bytes.subarray(start), entry.json);
    chunk.bounds[at] = start;
    chunk.bounds[at + 1] = chunk.used;
    chunk.timeUs[slot] = entry.timeUs;
    return chunk.bytes.subarray(start, chunk.used);
  };

  /** `bytes` as one zstd frame of its own (compressed into a reused buffer, then copied out at its size). */
  compress(bytes: Uint8Array): Buffer {
    const bound = binding.compressBound(bytes.length);
    if (this.#scratch.length < bound) this.#scratch = Buffer.allocUnsafeSlow(bound);
    return Buffer.from(this.#scratch.subarray(0, this.#context.compress2(this.#scratch, bytes)));
  }
}

/** Chosen by bench/fanout's ratio table: see the README's performance section. */
export const DEFAULT_LEVEL = 3;
