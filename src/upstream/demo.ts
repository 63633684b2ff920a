import { createHash } from 'node:crypto';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { create as createDigest } from 'multiformats/hashes/digest';
import type { Logger } from 'pino';
import { CarSlice } from './car.ts';
import type { RecordOp, UpstreamMessage } from './messages.ts';
import type { UpstreamMetrics } from './metrics.ts';
import { SeededRandom, tidFor } from './seeded.ts';

/** What the gateway needs of an upstream: FirehoseClient (a relay) or DemoUpstream. */
export interface UpstreamReader {
  readonly connected: boolean;
  /** Why it is not connected, if it knows. */
  readonly problem?: string;
  /** Why it is not being ingested although it is connected, if it knows (FirehoseClient.notIngesting). */
  readonly notIngesting?: string;
  start(): void;
  stop(): Promise<void>;
  pause(): void;
  resume(): void;
}

/** `--upstream demo` (seed 1) or `demo:<seed>`. */
export const DEMO_UPSTREAM = /^demo(?::(\d{1,9}))?$/;

const SHA2_256 = 0x12;
const CAR_HEADER = dagCbor.encode({ roots: [], version: 1 });
const EMPTY_CAR = new CarSlice(Uint8Array.from([CAR_HEADER.length, ...CAR_HEADER]));
const WORDS = [
  'the', 'a', 'and', 'to', 'of', 'is', 'in', 'that', 'it', 'for', 'this', 'you', 'my', 'on', 'with', 'just', 'so', 'but',
  'like', 'today', 'people', 'really', 'think', 'love', 'new', 'time', 'good', 'art', 'game', 'music', 'news', 'photo',
  'coffee', 'weekend', 'bluesky', 'feed', 'thread', 'city', 'rain', 'cat', 'dog', 'book', 'movie', 'friends', 'work',
  'obrigado', 'hoje', 'bom', 'dia', '今日', 'ありがとう', '好き', 'heute', 'danke', 'gracias', 'vraiment', '🎉', '😂', '✨', '🔥',
];
const LANGS = [['en'], ['en'], ['en'], ['ja'], ['pt'], ['de'], ['es'], ['fr']];

/**
 * A synthetic network for `--upstream demo`: commits, identity and account events in the live
 * Bluesky network's mix (mostly likes, then posts — some replies, some with links — reposts,
 * follows, deletes, profile edits, blocks, a non-Bluesky collection), as verified upstream
 * messages. The same seed and starting seq always give the same messages (times aside).
 */
export class DemoNetwork {
  readonly #random: SeededRandom;
  readonly #dids: string[];
  readonly #revs = new Map<string, number>();
  readonly #recentPosts: string[] = [];
  #seq: number;
  #tid = 0;

  constructor(
    seed: number,
    firstSeq: number,
    /** The clock for message times and createdAt (fixed in tests: then every byte repeats). */
    private readonly now: () => Date = () => new Date(),
    accounts = 2_000,
  ) {
    // Seeded by the start too, so a resumed demo goes on with new messages, not the first ones again.
    this.#random = new SeededRandom(seed * 1_000_003 + firstSeq);
    this.#seq = firstSeq - 1;
    this.#dids = Array.from({ length: accounts }, () => `did:plc:${this.#random.chars(24)}`);
  }

  next(): UpstreamMessage {
    const seq = ++this.#seq;
    const did = this.#random.pick(this.#dids);
    const time = this.now().toISOString();
    const roll = this.#random.next();
    if (roll < 0.006) return { type: 'identity', seq, did, time, handle: `${this.#word()}${this.#random.chars(4)}.bsky.social` };
    if (roll < 0.01) {
      const active = this.#random.next() < 0.7;
      return active ? { type: 'account', seq, did, time, active } : { type: 'account', seq, did, time, active, status: this.#random.pick(['deactivated', 'takendown', 'deleted']) };
    }
    const rev = (this.#revs.get(did) ?? 0) + 1;
    this.#revs.set(did, rev);
    const ops = this.#ops(did, roll);
    // No signed commit or MST in the demo: its commits carry an empty proof (--verify rejects them).
    const proof = { commit: undefined, prevData: undefined, car: EMPTY_CAR, ops: ops.map((op) => ({ action: op.action, path: `${op.collection}/${op.rkey}`, cid: undefined, prev: undefined })) };
    return { type: 'commit', seq, repo: did, rev: tidFor(rev * 1_000_000 + seq), time, ops, drops: [], proof };
  }

  #ops(did: string, roll: number): RecordOp[] {
    const createdAt = this.now().toISOString();
    if (roll < 0.45) return [this.#create('app.bsky.feed.like', { $type: 'app.bsky.feed.like', createdAt, subject: this.#subject() })];
    if (roll < 0.64) return [this.#post(did, createdAt)];
    if (roll < 0.73) return [this.#create('app.bsky.feed.repost', { $type: 'app.bsky.feed.repost', createdAt, subject: this.#subject() })];
    if (roll < 0.82) return [this.#create('app.bsky.graph.follow', { $type: 'app.bsky.graph.follow', createdAt, subject: this.#random.pick(this.#dids) })];
    if (roll < 0.91) {
      const collection = this.#random.pick(['app.bsky.feed.like', 'app.bsky.feed.like', 'app.bsky.feed.post', 'app.bsky.graph.follow']);
      return [{ action: 'delete', collection, rkey: this.#rkey(), cid: null, record: null }];
    }
    if (roll < 0.94) return Array.from({ length: 2 + Math.floor(this.#random.next() * 4) }, () => this.#post(did, createdAt)); // a thread
    if (roll < 0.96) {
      const profile = { $type: 'app.bsky.actor.profile', createdAt, description: this.#words(12), displayName: `${this.#word()} ${this.#word()}` };
      return [{ ...this.#create('app.bsky.actor.profile', profile), action: 'update', rkey: 'self' }];
    }
    if (roll < 0.98) return [this.#create('app.bsky.graph.block', { $type: 'app.bsky.graph.block', createdAt, subject: this.#random.pick(this.#dids) })];
    return [this.#create('fyi.unravel.frontpage.vote', { $type: 'fyi.unravel.frontpage.vote', createdAt, subject: this.#subject() })];
  }

  #post(did: string, createdAt: string): RecordOp {
    const text = this.#words(3 + Math.floor(this.#random.next() * 30));
    const post: Record<string, unknown> = { $type: 'app.bsky.feed.post', createdAt, langs: this.#random.pick(LANGS), text };
    if (this.#recentPosts.length > 0 && this.#random.next() < 0.35) {
      const parent = this.#subject();
      post.reply = { parent, root: parent };
    } else if (this.#random.next() < 0.15) {
      post.embed = { $type: 'app.bsky.embed.external', external: { description: this.#words(8), title: this.#words(4), uri: `https://example.com/${this.#random.chars(8)}` } };
    }
    const op = this.#create('app.bsky.feed.post', post);
    this.#recentPosts.push(`at://${did}/app.bsky.feed.post/${op.rkey}`);
    if (this.#recentPosts.length > 200) this.#recentPosts.shift();
    return op;
  }

  #create(collection: string, record: Record<string, unknown>): RecordOp {
    const bytes = dagCbor.encode(record);
    return { action: 'create', collection, rkey: this.#rkey(), cid: recordCid(bytes), record: bytes };
  }

  #subject(): { cid: string; uri: string } {
    const uri = this.#recentPosts.length > 0 && this.#random.next() < 0.6 ? this.#random.pick(this.#recentPosts) : `at://${this.#random.pick(this.#dids)}/app.bsky.feed.post/${this.#rkey()}`;
    return { cid: recordCid(Buffer.from(uri)), uri };
  }

  #rkey(): string {
    return tidFor(++this.#tid * 7919 + Math.floor(this.#random.next() * 1000));
  }

  #words(n: number): string {
    return Array.from({ length: n }, () => this.#word()).join(' ');
  }

  #word(): string {
    return this.#random.pick(WORDS);
  }


}


/** The CIDv1 (dag-cbor, sha2-256) of a block, as its string. */
function recordCid(bytes: Uint8Array): string {
  return CID.createV1(dagCbor.code, createDigest(SHA2_256, createHash('sha256').update(bytes).digest())).toString();
}

export interface DemoUpstreamOptions {
  seed: number;
  /** The seq to resume after (the consumer's), asked at start. */
  resumeCursor: () => number | undefined;
  onMessage: (message: UpstreamMessage) => void;
  logger: Logger;
  metrics: UpstreamMetrics;
  /** Messages a second (each commit may hold several ops). */
  messagesPerSecond?: number;
}

const TICK_MS = 100;

/**
 * `--upstream demo`: a DemoNetwork delivered at a steady rate, in place of a relay, so a
 * newcomer sees events within a second, offline. It honours pause() (ingest backpressure).
 */
export class DemoUpstream implements UpstreamReader {
  readonly #options: DemoUpstreamOptions;
  #network: DemoNetwork | undefined;
  #timer: NodeJS.Timeout | undefined;
  #paused = false;

  constructor(options: DemoUpstreamOptions) {
    this.#options = options;
  }

  get connected(): boolean {
    return this.#timer !== undefined;
  }

  start(): void {
    if (this.#timer) return;
    const { seed, logger, metrics } = this.#options;
    const firstSeq = (this.#options.resumeCursor() ?? 0) + 1;
    this.#network = new DemoNetwork(seed, firstSeq);
    const perTick = Math.max(1, Math.round(((this.#options.messagesPerSecond ?? 100) * TICK_MS) / 1000));
    logger.info({ seed, firstSeq, messagesPerSecond: (perTick * 1000) / TICK_MS }, 'upstream: the built-in demo network (synthetic events, no relay)');
    metrics.connected.set(1);
    this.#timer = setInterval(() => {
      if (this.#paused) return;
      for (let i = 0; i < perTick; i++) {
        const message = this.#network!.next();
        metrics.frames.inc({ type: message.type });
        this.#options.onMessage(message);
      }
    }, TICK_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#options.metrics.connected.set(0);
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
  }
}
