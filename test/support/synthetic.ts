/**
 * A realistic, seeded firehose: the mix of the live Bluesky network (mostly likes, then posts
 * with facets, embeds and replies, reposts, follows, deletes, some multi-op commits, profile
 * edits, blocks, a non-Bluesky collection, identity and account events), as subscribeRepos
 * frames. Used by benchmarks, by dictionary training, and by tests that need volume. The
 * gateway's `--upstream demo` (src/upstream/demo.ts) makes messages, not frames, in the same mix.
 */
import { createHash } from 'node:crypto';
import { CID } from 'multiformats/cid';
import { create as createDigest } from 'multiformats/hashes/digest';
import { mulberry32, SeededRandom } from '../../src/upstream/index.ts';
import { accountFrame, cborBlock, commitFrame, identityFrame, tidFor, type Block, type OpSpec } from './frames.ts';

/** The seeded generator is the demo upstream's (src/upstream/demo.ts), shared. */
export { mulberry32 };

const WORDS = [
  'the', 'a', 'and', 'to', 'of', 'is', 'in', 'that', 'it', 'for', 'this', 'you', 'my', 'on', 'with', 'just', 'so', 'but',
  'be', 'like', 'have', 'not', 'are', 'was', 'what', 'all', 'today', 'people', 'really', 'think', 'love', 'new', 'time',
  'good', 'one', 'know', 'about', 'more', 'out', 'now', 'art', 'game', 'music', 'news', 'photo', 'coffee', 'weekend',
  'bluesky', 'feed', 'thread', 'post', 'vote', 'city', 'rain', 'cat', 'dog', 'book', 'movie', 'friends', 'work',
  'obrigado', 'hoje', 'muito', 'gente', 'bom', 'dia', 'que', 'não', '今日', 'ありがとう', '本当に', 'です', '好き',
  'heute', 'danke', 'mañana', 'gracias', 'vraiment', '🎉', '😂', '❤️', '✨', '🔥', '🙏', '👀',
];
const LANGS = [['en'], ['en'], ['en'], ['ja'], ['pt'], ['de'], ['es'], ['fr'], ['en', 'ja']];
const DOMAINS = ['example.com', 'news.example.org', 'youtu.be', 'github.com', 'nytimes.com', 'theguardian.com'];
const MIME = ['image/jpeg', 'image/jpeg', 'image/png', 'image/webp'];

export interface SyntheticFrame {
  seq: number;
  bytes: Uint8Array;
  /** How many events this frame should become. */
  events: number;
}

export class SyntheticFirehose {
  readonly #random: SeededRandom;
  readonly #dids: string[];
  readonly #revs = new Map<string, number>();
  readonly #recent: Array<{ uri: string; cid: string }> = [];
  #seq: number;
  #tid = 0;

  constructor(options: { seed?: number; accounts?: number; firstSeq?: number } = {}) {
    this.#random = new SeededRandom(options.seed ?? 1);
    this.#seq = (options.firstSeq ?? 1) - 1;
    this.#dids = Array.from({ length: options.accounts ?? 5_000 }, () => `did:plc:${this.#random.chars(24)}`);
  }

  /** The next frame of the stream. */
  next(): SyntheticFrame {
    const seq = ++this.#seq;
    const roll = this.#random.next();
    const did = this.#random.pick(this.#dids);
    // Times come from the seed too, so a seed always yields the same bytes.
    const time = new Date(Date.UTC(2026, 10, 25) + seq * 3).toISOString();
    if (roll < 0.006) return { seq, bytes: identityFrame({ seq, did, time, handle: `${this.#word()}${this.#random.chars(4)}.bsky.social` }), events: 1 };
    if (roll < 0.01) {
      const active = this.#random.next() < 0.7;
      const status = active ? undefined : this.#random.pick(['deactivated', 'takendown', 'suspended', 'deleted', 'desynchronized', 'throttled']);
      return { seq, bytes: accountFrame({ seq, did, active, status, time }), events: 1 };
    }
    const ops = this.#ops(did, roll);
    const rev = (this.#revs.get(did) ?? 0) + 1;
    this.#revs.set(did, rev);
    const frame = commitFrame({ seq, repo: did, rev: tidFor(rev * 1000 + (seq % 1000)), ops, since: tidFor(rev * 1000 - 1), time, proofBlocks: this.#mstPath(ops) });
    return { seq, bytes: frame, events: ops.length };
  }

  frames(count: number): SyntheticFrame[] {
    return Array.from({ length: count }, () => this.next());
  }

  #ops(did: string, roll: number): OpSpec[] {
    const at = new Date(Date.UTC(2026, 10, 25) + Math.floor(this.#random.next() * 86_400_000)).toISOString();
    if (roll < 0.45) return [this.#create('app.bsky.feed.like', { $type: 'app.bsky.feed.like', createdAt: at, subject: this.#subject() })];
    if (roll < 0.64) return [this.#create('app.bsky.feed.post', this.#post(did, at))];
    if (roll < 0.73) return [this.#create('app.bsky.feed.repost', { $type: 'app.bsky.feed.repost', createdAt: at, subject: this.#subject() })];
    if (roll < 0.82) return [this.#create('app.bsky.graph.follow', { $type: 'app.bsky.graph.follow', createdAt: at, subject: this.#random.pick(this.#dids) })];
    if (roll < 0.91) {
      const collection = this.#random.pick(['app.bsky.feed.like', 'app.bsky.feed.like', 'app.bsky.feed.post', 'app.bsky.feed.repost', 'app.bsky.graph.follow']);
      return [{ action: 'delete', path: `${collection}/${this.#rkey()}` }];
    }
    if (roll < 0.94) {
      // A multi-op commit: a thread or a batch of follows (starter packs).
      const n = 2 + Math.floor(this.#random.next() * 6);
      const collection = this.#random.next() < 0.5 ? 'app.bsky.feed.post' : 'app.bsky.graph.follow';
      return Array.from({ length: n }, () =>
        collection === 'app.bsky.feed.post'
          ? this.#create(collection, this.#post(did, at))
          : this.#create(collection, { $type: collection, createdAt: at, subject: this.#random.pick(this.#dids) }),
      );
    }
    if (roll < 0.96) {
      return [{ action: 'update', path: 'app.bsky.actor.profile/self', record: this.#profile(at) }];
    }
    if (roll < 0.975) return [this.#create('app.bsky.graph.block', { $type: 'app.bsky.graph.block', createdAt: at, subject: this.#random.pick(this.#dids) })];
    if (roll < 0.99) {
      return [this.#create('app.bsky.graph.listitem', { $type: 'app.bsky.graph.listitem', createdAt: at, list: `at://${did}/app.bsky.graph.list/${this.#rkey()}`, subject: this.#random.pick(this.#dids) })];
    }
    return [this.#create('fyi.unravel.frontpage.vote', { $type: 'fyi.unravel.frontpage.vote', createdAt: at, subject: this.#subject() })];
  }

  /** MST nodes from the root down to the ops' leaves, sized like the live network's (4–7 nodes, 50–900 bytes). */
  #mstPath(ops: OpSpec[]): Block[] {
    const depth = 4 + Math.floor(this.#random.next() * 4);
    return Array.from({ length: depth }, (_, level) => {
      const entries = 1 + Math.floor(this.#random.next() * (level === depth - 1 ? 4 : 10));
      return cborBlock({
        e: Array.from({ length: entries }, (_, i) => ({
          k: new TextEncoder().encode(i === 0 ? (ops[0]?.path ?? 'app.bsky.feed.like/x') : this.#rkey().slice(0, 2 + Math.floor(this.#random.next() * 11))),
          p: i === 0 ? 0 : Math.floor(this.#random.next() * 20),
          t: this.#random.next() < 0.5 ? null : CID.parse(this.#cid()),
          v: CID.parse(this.#cid()),
        })),
        l: this.#random.next() < 0.7 ? CID.parse(this.#cid()) : null,
      });
    });
  }

  #create(collection: string, record: Record<string, unknown>): OpSpec {
    return { action: 'create', path: `${collection}/${this.#rkey()}`, record };
  }

  #post(did: string, createdAt: string): Record<string, unknown> {
    const words = Array.from({ length: 3 + Math.floor(this.#random.next() * 35) }, () => this.#word());
    const post: Record<string, unknown> = { $type: 'app.bsky.feed.post', createdAt, langs: this.#random.pick(LANGS), text: '' };
    const facets: unknown[] = [];
    if (this.#random.next() < 0.25) {
      const handle = `${this.#word()}.bsky.social`;
      facets.push(this.#facet(words, `@${handle}`, { $type: 'app.bsky.richtext.facet#mention', did: this.#random.pick(this.#dids) }));
    }
    if (this.#random.next() < 0.15) {
      const url = `https://${this.#random.pick(DOMAINS)}/${this.#random.chars(8)}`;
      facets.push(this.#facet(words, url.replace('https://', ''), { $type: 'app.bsky.richtext.facet#link', uri: url }));
    }
    if (this.#random.next() < 0.1) {
      const tag = this.#word();
      facets.push(this.#facet(words, `#${tag}`, { $type: 'app.bsky.richtext.facet#tag', tag }));
    }
    post.text = words.join(' ');
    if (facets.length) post.facets = facets;
    if (this.#random.next() < 0.35 && this.#recent.length) {
      const root = this.#random.pick(this.#recent);
      const parent = this.#random.next() < 0.5 ? root : this.#random.pick(this.#recent);
      post.reply = { parent: { cid: parent.cid, uri: parent.uri }, root: { cid: root.cid, uri: root.uri } };
    }
    const embed = this.#random.next();
    if (embed < 0.15) {
      post.embed = {
        $type: 'app.bsky.embed.images',
        images: Array.from({ length: 1 + Math.floor(this.#random.next() * 4) }, () => ({
          alt: this.#random.next() < 0.4 ? words.slice(0, 6).join(' ') : '',
          aspectRatio: { height: 600 + Math.floor(this.#random.next() * 1400), width: 800 + Math.floor(this.#random.next() * 1200) },
          image: this.#blob(),
        })),
      };
    } else if (embed < 0.25) {
      post.embed = {
        $type: 'app.bsky.embed.external',
        external: { description: words.slice(0, 12).join(' '), title: words.slice(0, 5).join(' '), uri: `https://${this.#random.pick(DOMAINS)}/${this.#random.chars(10)}` },
      };
    } else if (embed < 0.3) {
      post.embed = { $type: 'app.bsky.embed.record', record: this.#subject() };
    }
    const rkey = this.#rkey();
    this.#remember({ uri: `at://${did}/app.bsky.feed.post/${rkey}`, cid: this.#cid() });
    return post;
  }

  #facet(words: string[], text: string, feature: Record<string, unknown>): unknown {
    const before = Buffer.byteLength(words.join(' ')) + (words.length ? 1 : 0);
    words.push(text);
    return { $type: 'app.bsky.richtext.facet', features: [feature], index: { byteEnd: before + Buffer.byteLength(text), byteStart: before } };
  }

  #profile(createdAt: string): Record<string, unknown> {
    return {
      $type: 'app.bsky.actor.profile',
      avatar: this.#blob(),
      createdAt,
      description: Array.from({ length: 12 }, () => this.#word()).join(' '),
      displayName: `${this.#word()} ${this.#word()}`,
    };
  }

  #blob(): Record<string, unknown> {
    return { $type: 'blob', ref: CID.parse(this.#cid('raw')), mimeType: this.#random.pick(MIME), size: 20_000 + Math.floor(this.#random.next() * 900_000) };
  }

  #subject(): { cid: string; uri: string } {
    if (this.#recent.length && this.#random.next() < 0.6) return this.#random.pick(this.#recent);
    return { cid: this.#cid(), uri: `at://${this.#random.pick(this.#dids)}/app.bsky.feed.post/${this.#rkey()}` };
  }

  #remember(ref: { uri: string; cid: string }): void {
    this.#recent.push(ref);
    if (this.#recent.length > 500) this.#recent.shift();
  }

  #cid(codec: 'dag-cbor' | 'raw' = 'dag-cbor'): string {
    const digest = createDigest(0x12, createHash('sha256').update(this.#random.chars(16)).digest());
    return CID.createV1(codec === 'raw' ? 0x55 : 0x71, digest).toString();
  }

  #rkey(): string {
    return tidFor(++this.#tid * 7919 + Math.floor(this.#random.next() * 1000));
  }

  #word(): string {
    return this.#random.pick(WORDS);
  }


}
