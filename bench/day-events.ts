/**
 * Events with the live network's mix and sizes, straight as Jetstream JSON (no CBOR on the way:
 * a day of them must be made in minutes). The mix, from the measurements: likes ≈ 47 %,
 * follows ≈ 33 %, posts ≈ 9.5 % (facets, embeds, replies), reposts ≈ 6 %, blocks ≈ 1.6 %,
 * profiles ≈ 0.8 %, list items ≈ 0.8 %, identity/account ≈ 0.6 %; ~10 % of follows and ~5 % of
 * posts are deletes. DIDs are Zipf-distributed (s = 1) over `repos` repos. Seeded: the same
 * arguments give the same stream.
 */
import type { Entry } from '../src/events/index.ts';
import { mulberry32 } from '../test/support/synthetic.ts';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const WORDS = (
  'the a and to of is in that it for this you my on with just so but be like have not are was what all today people really think ' +
  'love new time good one know about more out now art game music news photo coffee weekend bluesky feed thread post vote city rain ' +
  'cat dog book movie friends work obrigado hoje muito gente bom dia que não 今日 ありがとう 本当に です 好き heute danke mañana gracias 🎉 😂 ❤️ ✨'
).split(' ');
const LANGS = ['"en"', '"en"', '"en"', '"ja"', '"pt"', '"de"', '"es"', '"fr"', '"en","ja"'];
const DOMAINS = ['example.com', 'news.example.org', 'youtu.be', 'github.com', 'nytimes.com', 'theguardian.com'];

export interface DayEvents {
  /** The DIDs, by Zipf rank (index 0 is the busiest). */
  dids: string[];
  /** Events generated per DID rank so far. */
  perDid: Int32Array;
  /** The next `count` events, time_us spaced as at `eventsPerSecond`. */
  next(count: number): Entry[];
}

export function dayEvents(options: { repos: number; seed: number; firstTimeUs: number; eventsPerSecond: number }): DayEvents {
  const rnd = mulberry32(options.seed);
  const chars = (n: number) => {
    let s = '';
    for (let i = 0; i < n; i++) s += BASE32[(rnd() * 32) | 0];
    return s;
  };
  const dids = Array.from({ length: options.repos }, () => `did:plc:${chars(24)}`);
  const perDid = new Int32Array(options.repos);
  const logRepos = Math.log(options.repos);
  const rank = () => Math.min(options.repos - 1, Math.floor(Math.exp(rnd() * logRepos)) - 1);
  const anyDid = () => dids[(rnd() * dids.length) | 0];
  const cid = () => `bafyrei${chars(52)}`;
  let timeUs = options.firstTimeUs;
  const step = 1e6 / options.eventsPerSecond;
  const rkey = () => `3l${chars(11)}`;
  const words = (n: number) => Array.from({ length: n }, () => WORDS[(rnd() * WORDS.length) | 0]).join(' ');
  const createdAt = () => new Date(timeUs / 1000 - rnd() * 5_000).toISOString();
  const subject = () => `{"cid":"${cid()}","uri":"at://${anyDid()}/app.bsky.feed.post/${rkey()}"}`;
  const blob = () => `{"$type":"blob","ref":{"$link":"bafkrei${chars(52)}"},"mimeType":"image/jpeg","size":${20_000 + ((rnd() * 900_000) | 0)}}`;

  function post(): string {
    const text = words(4 + ((rnd() * 30) | 0));
    const parts = [`"$type":"app.bsky.feed.post"`, `"createdAt":"${createdAt()}"`];
    const embed = rnd();
    if (embed < 0.15) {
      const images = Array.from({ length: 1 + ((rnd() * 3) | 0) }, () => `{"alt":"${rnd() < 0.4 ? words(6) : ''}","aspectRatio":{"height":${600 + ((rnd() * 1400) | 0)},"width":${800 + ((rnd() * 1200) | 0)}},"image":${blob()}}`);
      parts.push(`"embed":{"$type":"app.bsky.embed.images","images":[${images.join(',')}]}`);
    } else if (embed < 0.25) {
      parts.push(`"embed":{"$type":"app.bsky.embed.external","external":{"description":"${words(12)}","title":"${words(5)}","uri":"https://${DOMAINS[(rnd() * DOMAINS.length) | 0]}/${chars(10)}"}}`);
    } else if (embed < 0.3) {
      parts.push(`"embed":{"$type":"app.bsky.embed.record","record":${subject()}}`);
    }
    if (rnd() < 0.2) {
      parts.push(`"facets":[{"$type":"app.bsky.richtext.facet","features":[{"$type":"app.bsky.richtext.facet#mention","did":"${anyDid()}"}],"index":{"byteEnd":${20 + ((rnd() * 20) | 0)},"byteStart":${(rnd() * 20) | 0}}}]`);
    }
    parts.push(`"langs":[${LANGS[(rnd() * LANGS.length) | 0]}]`);
    if (rnd() < 0.35) parts.push(`"reply":{"parent":${subject()},"root":${subject()}}`);
    parts.push(`"text":${JSON.stringify(text)}`);
    return `{${parts.join(',')}}`;
  }

  function next(count: number): Entry[] {
    const out: Entry[] = new Array(count);
    for (let i = 0; i < count; i++) {
      timeUs += step;
      const t = Math.round(timeUs); // strictly increasing: the step is at least 1 µs
      const r = rank(); // below options.repos, the length of both arrays
      perDid[r]!++;
      const did = dids[r]!;
      const roll = rnd() * 100;
      if (roll < 0.6) {
        const identity = roll < 0.35;
        const json = identity
          ? `{"did":"${did}","time_us":${t},"kind":"identity","identity":{"did":"${did}","handle":"${chars(8)}.bsky.social","seq":${t},"time":"${createdAt()}"}}`
          : `{"did":"${did}","time_us":${t},"kind":"account","account":{"active":true,"did":"${did}","seq":${t},"time":"${createdAt()}"}}`;
        out[i] = { timeUs: t, did, kind: identity ? 'identity' : 'account', collection: null, json: Buffer.from(json) };
        continue;
      }
      let collection: string;
      let record: string | null;
      if (roll < 47.6) {
        collection = 'app.bsky.feed.like';
        record = `{"$type":"app.bsky.feed.like","createdAt":"${createdAt()}","subject":${subject()}}`;
      } else if (roll < 80.6) {
        collection = 'app.bsky.graph.follow';
        record = rnd() < 0.1 ? null : `{"$type":"app.bsky.graph.follow","createdAt":"${createdAt()}","subject":"${anyDid()}"}`;
      } else if (roll < 90.1) {
        collection = 'app.bsky.feed.post';
        record = rnd() < 0.05 ? null : post();
      } else if (roll < 96.1) {
        collection = 'app.bsky.feed.repost';
        record = `{"$type":"app.bsky.feed.repost","createdAt":"${createdAt()}","subject":${subject()}}`;
      } else if (roll < 97.7) {
        collection = 'app.bsky.graph.block';
        record = `{"$type":"app.bsky.graph.block","createdAt":"${createdAt()}","subject":"${anyDid()}"}`;
      } else if (roll < 98.5) {
        collection = 'app.bsky.actor.profile';
        record = `{"$type":"app.bsky.actor.profile","avatar":${blob()},"createdAt":"${createdAt()}","description":"${words(12)}","displayName":"${words(2)}"}`;
      } else if (roll < 99.3) {
        collection = 'app.bsky.graph.listitem';
        record = `{"$type":"app.bsky.graph.listitem","createdAt":"${createdAt()}","list":"at://${did}/app.bsky.graph.list/${rkey()}","subject":"${anyDid()}"}`;
      } else {
        collection = 'fyi.unravel.frontpage.vote';
        record = `{"$type":"fyi.unravel.frontpage.vote","createdAt":"${createdAt()}","subject":${subject()}}`;
      }
      const operation = record === null ? 'delete' : 'create';
      const tail = record === null ? '' : `,"record":${record},"cid":"${cid()}"`;
      const json = `{"did":"${did}","time_us":${t},"kind":"commit","commit":{"rev":"3l${chars(11)}","operation":"${operation}","collection":"${collection}","rkey":"${rkey()}"${tail}}}`;
      out[i] = { timeUs: t, did, kind: 'commit', collection, json: Buffer.from(json) };
    }
    return out;
  }

  return { dids, perDid, next };
}
