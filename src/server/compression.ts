import binding from 'zstd-napi/binding.js';
import type { Entry } from '../events/index.ts';
import { knownDictionaryMismatch } from './known-dictionaries.ts';

/** Frames kept per chunk: the events whose sequence numbers share seq / CHUNK_EVENTS. */
const CHUNK_EVENTS = 256;
/** Chunks kept, the least recently made dropped first: the frames of the last ~32k sequence numbers compressed subscribers were sent (~6 MB here: 256 frames of the network's sizes fill ~48 KiB). */
const CHUNKS_KEPT = 128;
/** A chunk's frames are written side by side into buffers of this size, a new one when the next frame might not fit. */
const BUFFER_BYTES = 16 * 1024;

type Context = InstanceType<typeof binding.CCtx>;

const EMPTY = new ArrayBuffer(0);
/** An event as subscribers get it: compressed and decompressed with a dictionary at start, to prove it usable. */
const SAMPLE_EVENT = Buffer.from(
  '{"did":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","time_us":1764806400000000,"kind":"commit","commit":{"rev":"3m7b2zbbhmk2a","operation":"create","collection":"app.bsky.feed.post","rkey":"3m7b2zbbhmk2a","record":{"$type":"app.bsky.feed.post","createdAt":"2026-12-04T00:00:00.000Z","langs":["en"],"text":"hello"},"cid":"bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"}}',
);

/** The frames of up to CHUNK_EVENTS consecutive sequence numbers. */
class FrameChunk {
  /** Its sequence numbers are id * CHUNK_EVENTS and on (-1: none yet). */
  id = -1;
  /** The memory its next frame is written into, at `used`; the frames before keep theirs. */
  bytes = EMPTY;
  used = 0;
  /** Frame i's event's time_us: a sequence number names an event only within one store. */
  readonly timeUs = new Float64Array(CHUNK_EVENTS);
  /** Frame i: a view of the memory it was written into, handed to every subscriber it is sent to; undefined: not made yet. */
  readonly frames: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(CHUNK_EVENTS).fill(undefined);

  /** Empties it for the chunk `id` (the frames handed out keep their memory). */
  reuse(id: number): void {
    this.id = id;
    this.bytes = EMPTY;
    this.used = 0;
    this.frames.fill(undefined);
  }

  /** Makes room for `bytes` more: new memory when they might not fit. */
  reserve(bytes: number): void {
    if (this.bytes.byteLength - this.used >= bytes) return;
    // Not zeroed: only what zstd wrote is ever handed out.
    this.bytes = Buffer.allocUnsafeSlow(Math.max(BUFFER_BYTES, bytes)).buffer;
    this.used = 0;
  }
}

/**
 * zstd for `compress=true` subscribers: each event becomes one standalone zstd frame made with
 * the active dictionary, whose ID is written in the frame header so a client holding several
 * dictionaries (Jetstream's Go client does) can pick the right one. An event is compressed at
 * most once while its frame is kept, and shared by every compressed subscriber.
 *
 * A live event is compressed at `level`; one a subscriber catches up on (a replay, a backfill)
 * whose frame is not kept, at `replayLevel`: a replay from disk compresses every event again, and
 * at level 1 that costs two thirds of level 3's CPU for 0.5–1.6 % more bytes (README, Performance:
 * "Full replay to one client"). Either way a frame is kept and shared: a replay of recent events
 * gets the frames their live sends made.
 *
 * Frames are kept by the event's sequence number, a chunk of consecutive ones written side by
 * side into shared buffers, not one Buffer each on the Entry: twenty replays keep their events
 * alive for a second or so, and a frame object per event (with the property holding it) was a
 * fifth of what survived the gateway's young-generation collections, each survivor copied by
 * every one of them (bench/replay-live --survivors). The frames handed out are views of a
 * chunk's buffers, never written again: a transport that queues them (`ws`) keeps them intact.
 * Each frame has one view, kept beside it and handed to every subscriber it goes to: a view per
 * send was the largest thing twenty replays allocated, and a live event went to each compressed
 * subscriber as a view of its own where it had been one shared Buffer. The chunks sit in an
 * array, reused in the order they were made, not in a Map: V8 moves a long-lived Map's outgrown
 * tables to the old generation still pointing at what they held, which kept the store's merged
 * blocks alive through young collections.
 */
export class EventCompressor {
  readonly dictionaryId: number;
  readonly #context: Context;
  /** The context replayed frames are made with: #context itself when the levels are the same. */
  readonly #replayContext: Context;
  /** Up to CHUNKS_KEPT, made as needed, then reused in turn from #next (the least recently made first). */
  readonly #chunks: FrameChunk[] = [];
  #next = 0;
  /** The chunk the last frame came from: consecutive frames mostly share one. */
  #last = new FrameChunk();
  #scratch = Buffer.alloc(0);

  constructor(
    readonly dictionary: Buffer,
    readonly level = DEFAULT_LEVEL,
    readonly replayLevel = DEFAULT_REPLAY_LEVEL,
  ) {
    // Whole and usable is checked once, where the gateway reads the file (checkDictionary), not
    // again by each compressor (the server's and every replay worker's).
    this.dictionaryId = binding.getDictIDFromDict(dictionary);
    if (this.dictionaryId === 0) throw new Error('not a zstd dictionary (no dictionary ID)');
    this.#context = frameContext(dictionary, level);
    this.#replayContext = replayLevel === level ? this.#context : frameContext(dictionary, replayLevel);
  }

  /** Chunks of frames held now: at most CHUNKS_KEPT. */
  get keptChunks(): number {
    return this.#chunks.length;
  }

  /**
   * The entry's frame, kept by its sequence number: meant for one store's events (a server's, a
   * replay worker's), though an event of another store with the same number is told apart by its
   * time_us and compressed anew. An entry without a sequence number is compressed each time.
   */
  readonly compressed = (entry: Entry): Uint8Array => this.#framed(entry, this.#context);

  /** The entry's frame for a subscriber catching up: the kept one, or one made at the replay level (and kept). */
  readonly replayed = (entry: Entry): Uint8Array => this.#framed(entry, this.#replayContext);

  #framed(entry: Entry, context: Context): Uint8Array {
    const { seq } = entry;
    if (seq === undefined) return this.#compressWith(context, entry.json);
    const id = Math.floor(seq / CHUNK_EVENTS);
    const slot = seq - id * CHUNK_EVENTS;
    let chunk = this.#last.id === id ? this.#last : this.#find(id);
    if (chunk === undefined) {
      if (this.#chunks.length < CHUNKS_KEPT) this.#chunks.push((chunk = new FrameChunk()));
      else chunk = this.#chunks[this.#next]!;
      chunk.reuse(id);
      this.#next = (this.#next + 1) % CHUNKS_KEPT;
    } else {
      const frame = chunk.frames[slot];
      if (frame !== undefined && chunk.timeUs[slot] === entry.timeUs) {
        this.#last = chunk;
        return frame;
      }
    }
    this.#last = chunk;
    const bound = compressBound(entry.json.byteLength);
    chunk.reserve(bound);
    const start = chunk.used;
    // Plain views of the chunk's ArrayBuffer: a Buffer's subarray (and its .buffer getter) cost
    // more than the view, and a compressed replay from disk makes two per event.
    const length = context.compress2(new Uint8Array(chunk.bytes, start, bound), entry.json);
    chunk.used += length;
    chunk.timeUs[slot] = entry.timeUs;
    return (chunk.frames[slot] = new Uint8Array(chunk.bytes, start, length));
  }

  #find(id: number): FrameChunk | undefined {
    for (const chunk of this.#chunks) if (chunk.id === id) return chunk;
    return undefined;
  }

  /** `bytes` as one zstd frame of its own, at the live level. */
  compress(bytes: Uint8Array): Buffer {
    return this.#compressWith(this.#context, bytes);
  }

  /** Compressed into a reused buffer, then copied out at its size. */
  #compressWith(context: Context, bytes: Uint8Array): Buffer {
    const bound = compressBound(bytes.byteLength);
    if (this.#scratch.length < bound) this.#scratch = Buffer.allocUnsafeSlow(bound);
    return Buffer.from(this.#scratch.subarray(0, context.compress2(this.#scratch, bytes)));
  }
}

/**
 * zstd's ZSTD_COMPRESSBOUND (zstd.h: the largest frame one pass can make of `length` bytes; the
 * library's own compressBound, computed here: through N-API it cost a compressed replay a call
 * per event). compression.test.ts checks it against the library's.
 */
export function compressBound(length: number): number {
  return length + (length >>> 8) + (length < 128 * 1024 ? (128 * 1024 - length) >>> 11 : 0);
}

/** A compression context for standalone frames at `level` with the dictionary, its ID in each frame's header (Jetstream's frame: content size, no checksum). */
function frameContext(dictionary: Buffer, level: number): Context {
  const context = new binding.CCtx();
  const { CParameter } = binding;
  context.setParameter(CParameter.compressionLevel, level);
  context.setParameter(CParameter.dictIDFlag, 1);
  context.setParameter(CParameter.contentSizeFlag, 1);
  context.setParameter(CParameter.checksumFlag, 0);
  context.loadDictionary(dictionary);
  return context;
}

/**
 * The dictionary's zstd ID, once it is known whole and usable: a file with no ID, one carrying the ID
 * of a dictionary clients hold but not its content (known-dictionaries.ts), or one that cannot
 * compress an event and decompress it back, throws saying which.
 */
export function checkDictionary(dictionary: Buffer): number {
  const id = binding.getDictIDFromDict(dictionary);
  if (id === 0) throw new Error('not a zstd dictionary (no dictionary ID)');
  const mismatch = knownDictionaryMismatch(id, dictionary);
  if (mismatch) throw new Error(mismatch);
  try {
    const compressor = new binding.CCtx();
    compressor.loadDictionary(dictionary);
    const frame = Buffer.alloc(binding.compressBound(SAMPLE_EVENT.length));
    const frameLength = compressor.compress2(frame, SAMPLE_EVENT);
    const decompressor = new binding.DCtx();
    decompressor.loadDictionary(dictionary);
    const back = Buffer.alloc(SAMPLE_EVENT.length);
    const length = decompressor.decompress(back, frame.subarray(0, frameLength));
    if (length !== SAMPLE_EVENT.length || !back.equals(SAMPLE_EVENT)) throw new Error('an event did not decompress to itself');
  } catch (err) {
    throw new Error(`not a usable zstd dictionary: ${(err as Error).message}`);
  }
  return id;
}

/** Live events' level, chosen by bench/fanout's ratio table: see the README's performance section. */
export const DEFAULT_LEVEL = 3;
/** Replayed events' level (--zstd-replay-level), chosen by bench/replay-full: see the README's performance section. */
export const DEFAULT_REPLAY_LEVEL = 1;
/** The levels zstd takes (negative ones trade literal compression for speed). */
export const ZSTD_LEVELS = { min: binding.minCLevel(), max: binding.maxCLevel() };
