// A realistic write mix through @atproto/api, as Bluesky clients and other atproto apps make it,
// that also writes down the Jetstream event each write must become. The list of expectations
// is in write order: every call below is awaited, and the PDS sequences a write before it
// answers, so the firehose (and therefore contrail) must deliver the events in this order.
//
// How a write maps to events (Jetstream v1):
// - each created/updated/deleted record → one commit event; collection and rkey from the URI
//   the PDS returned, cid equal to the CID it returned, record deep-equal to what was written
//   (in atproto JSON form: blobs as {$type:'blob', ref:{$link}, mimeType, size});
// - createAccount → identity (with the handle), then account (active); its empty first commit
//   and its #sync carry no record ops, so they make no events;
// - a handle change → identity; deactivate → account active=false status=deactivated;
//   activate → account active=true, then identity (#sync again makes nothing).
import { AtpAgent, RichText } from '@atproto/api';

// A 1×1 transparent PNG: a real image blob for avatars and image embeds.
export const PNG_1X1 = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=',
  'base64',
);

/** The collection every filter in the suite lets through; its records mark the end of a phase. */
export const SENTINEL_COLLECTION = 'com.example.thing';

const rkeyOf = (uri) => uri.split('/').pop();
const collectionOf = (uri) => uri.split('/').at(-2);
/** What the record looks like as atproto JSON (BlobRef has toJSON; undefined fields vanish). */
const asJson = (value) => JSON.parse(JSON.stringify(value));

// createdAt values are fixed strings, not "now": the records stay byte-for-byte reproducible.
let clock = Date.parse('2025-01-01T00:00:00.000Z');
const createdAt = () => new Date((clock += 1000)).toISOString();

export class Activity {
  /** @type {Array<object>} the expected events, in order; see expect*() for their shapes */
  expected = [];
  /** name → {name, agent, did, handle} */
  users = new Map();

  constructor(pdsUrl) {
    this.pdsUrl = pdsUrl;
  }

  // ---- expectations ---------------------------------------------------------------------
  expectCommit(user, operation, uri, cid, record, label) {
    this.expected.push({
      label,
      kind: 'commit',
      did: user.did,
      operation,
      collection: collectionOf(uri),
      rkey: rkeyOf(uri),
      ...(operation === 'delete' ? {} : { cid, record: asJson(record) }),
    });
  }
  expectIdentity(user, label) {
    this.expected.push({ label, kind: 'identity', did: user.did, handle: user.handle });
  }
  expectAccount(user, active, status, label) {
    this.expected.push({ label, kind: 'account', did: user.did, active, ...(status ? { status } : {}) });
  }

  // ---- accounts -------------------------------------------------------------------------
  async createAccount(name) {
    const agent = new AtpAgent({ service: this.pdsUrl });
    const handle = `${name}.test`;
    await agent.createAccount({ handle, email: `${name}@example.com`, password: `${name}-password` });
    const user = { name, agent, did: agent.session.did, handle };
    this.users.set(name, user);
    this.expectIdentity(user, `createAccount ${name}: identity`);
    this.expectAccount(user, true, undefined, `createAccount ${name}: account`);
    return user;
  }

  async changeHandle(user, handle) {
    await user.agent.com.atproto.identity.updateHandle({ handle });
    user.handle = handle;
    this.expectIdentity(user, `handle change ${user.name} → ${handle}`);
  }

  async deactivateAndActivate(user) {
    await user.agent.com.atproto.server.deactivateAccount({});
    this.expectAccount(user, false, 'deactivated', `deactivate ${user.name}`);
    await user.agent.com.atproto.server.activateAccount();
    this.expectAccount(user, true, undefined, `activate ${user.name}: account`);
    this.expectIdentity(user, `activate ${user.name}: identity`);
  }

  // ---- records --------------------------------------------------------------------------
  /** agent.post(), the call every Bluesky client makes. */
  async post(user, fields, label = 'post') {
    const record = { $type: 'app.bsky.feed.post', createdAt: createdAt(), ...fields };
    const { uri, cid } = await user.agent.post({ ...record });
    this.expectCommit(user, 'create', uri, cid, record, `${label} by ${user.name}`);
    return { uri, cid };
  }

  /** A post whose mention, link and hashtag facets RichText detects (the mention resolves through the PDS). */
  async postWithFacets(user, mentioned) {
    const text = `hey @${mentioned.handle} see https://example.com/page?x=1&y=<2> #atproto #contrail 🚀`;
    const rich = new RichText({ text });
    await rich.detectFacets(user.agent);
    return this.post(user, { text: rich.text, facets: rich.facets, langs: ['en'] }, 'post with facets');
  }

  async uploadPng(user) {
    const { data } = await user.agent.uploadBlob(PNG_1X1, { encoding: 'image/png' });
    return data.blob; // a BlobRef
  }

  /** agent.upsertProfile(): it returns nothing, so the CID comes from reading the record back. */
  async upsertProfile(user, change, label = 'profile') {
    let written;
    let existed = false;
    await user.agent.upsertProfile((old) => {
      existed = old !== undefined;
      written = { $type: 'app.bsky.actor.profile', ...(old ?? {}), ...change };
      return written;
    });
    const uri = `at://${user.did}/app.bsky.actor.profile/self`;
    const { data } = await user.agent.com.atproto.repo.getRecord({ repo: user.did, collection: 'app.bsky.actor.profile', rkey: 'self' });
    this.expectCommit(user, existed ? 'update' : 'create', uri, data.cid, written, `${label} by ${user.name}`);
  }

  /** agent.like/repost/follow fill in createdAt themselves: the stored record is read back as the expectation. */
  async viaHelper(user, kind, call) {
    const { uri, cid } = await call();
    const { data } = await user.agent.com.atproto.repo.getRecord({ repo: user.did, collection: collectionOf(uri), rkey: rkeyOf(uri) });
    if (data.cid !== cid) throw new Error(`getRecord ${uri} returned cid ${data.cid}, the write returned ${cid}`);
    this.expectCommit(user, 'create', uri, cid, data.value, `${kind} by ${user.name}`);
    return { uri, cid };
  }
  like(user, subject) {
    return this.viaHelper(user, 'like', () => user.agent.like(subject.uri, subject.cid));
  }
  repost(user, subject) {
    return this.viaHelper(user, 'repost', () => user.agent.repost(subject.uri, subject.cid));
  }
  follow(user, other) {
    return this.viaHelper(user, 'follow', () => user.agent.follow(other.did));
  }

  /** The generated record API (agent.app.bsky.graph.block.create), with the whole record given. */
  async block(user, other) {
    const record = { $type: 'app.bsky.graph.block', subject: other.did, createdAt: createdAt() };
    const { uri, cid } = await user.agent.app.bsky.graph.block.create({ repo: user.did }, record);
    this.expectCommit(user, 'create', uri, cid, record, `block by ${user.name}`);
    return { uri, cid };
  }

  /** deletePost / deleteLike / deleteFollow / block.delete: all are deleteRecord underneath. */
  async remove(user, uri, how) {
    const rkey = rkeyOf(uri);
    if (how === 'post') await user.agent.deletePost(uri);
    else if (how === 'like') await user.agent.deleteLike(uri);
    else if (how === 'follow') await user.agent.deleteFollow(uri);
    else if (how === 'block') await user.agent.app.bsky.graph.block.delete({ repo: user.did, rkey });
    else throw new Error(`unknown delete ${how}`);
    this.expectCommit(user, 'delete', uri, null, null, `delete ${how} by ${user.name}`);
  }

  /** putRecord over an existing record (an edit), guarded by swapRecord as clients do. */
  async editPost(user, post, text) {
    const record = { $type: 'app.bsky.feed.post', text, createdAt: createdAt() };
    const { data } = await user.agent.com.atproto.repo.putRecord({
      repo: user.did,
      collection: 'app.bsky.feed.post',
      rkey: rkeyOf(post.uri),
      record,
      swapRecord: post.cid,
    });
    this.expectCommit(user, 'update', data.uri, data.cid, record, `edit post by ${user.name}`);
    return { uri: data.uri, cid: data.cid };
  }

  /** createRecord in a collection no Bluesky lexicon knows (the PDS stores it unvalidated). */
  async createOther(user, rkey, fields, label = 'non-Bluesky record') {
    const record = { $type: SENTINEL_COLLECTION, ...fields };
    const { data } = await user.agent.com.atproto.repo.createRecord({ repo: user.did, collection: SENTINEL_COLLECTION, rkey, record });
    this.expectCommit(user, 'create', data.uri, data.cid, record, `${label} by ${user.name}`);
    return { uri: data.uri, cid: data.cid };
  }

  /** The record that ends a phase: it passes every filter the suite uses (carol, com.example.thing). */
  sentinel(user, phase) {
    return this.createOther(user, `sentinel-${phase}`, { phase }, `sentinel ${phase}`);
  }

  /**
   * One applyWrites call = one commit with several ops, which must become one event per op in
   * op order: creates in two collections, an update and a delete.
   */
  async batch(user, { deletePost }) {
    const postA = { $type: 'app.bsky.feed.post', text: 'batch post A', createdAt: createdAt() };
    const postB = { $type: 'app.bsky.feed.post', text: 'batch post B', createdAt: createdAt() };
    const thing = { $type: SENTINEL_COLLECTION, from: 'applyWrites', list: [1, 2, 3], nested: { ok: true } };
    const profile = { $type: 'app.bsky.actor.profile', displayName: `${user.name} (batched)`, description: 'set in an applyWrites batch' };
    const writes = [
      { $type: 'com.atproto.repo.applyWrites#create', collection: 'app.bsky.feed.post', value: postA },
      { $type: 'com.atproto.repo.applyWrites#create', collection: 'app.bsky.feed.post', value: postB },
      { $type: 'com.atproto.repo.applyWrites#create', collection: SENTINEL_COLLECTION, rkey: 'batched-1', value: thing },
      { $type: 'com.atproto.repo.applyWrites#update', collection: 'app.bsky.actor.profile', rkey: 'self', value: profile },
      { $type: 'com.atproto.repo.applyWrites#delete', collection: 'app.bsky.feed.post', rkey: rkeyOf(deletePost.uri) },
    ];
    const { data } = await user.agent.com.atproto.repo.applyWrites({ repo: user.did, writes });
    const results = data.results ?? [];
    if (results.length !== writes.length) throw new Error(`applyWrites returned ${results.length} results for ${writes.length} writes`);
    const operations = ['create', 'create', 'create', 'update'];
    const values = [postA, postB, thing, profile];
    operations.forEach((operation, i) => this.expectCommit(user, operation, results[i].uri, results[i].cid, values[i], `applyWrites[${i}] by ${user.name}`));
    this.expectCommit(user, 'delete', deletePost.uri, null, null, `applyWrites[4] delete by ${user.name}`);
    return { postA: results[0], postB: results[1] };
  }
}

/** The accounts phase one writes with, created first so that DID filters can name them. */
export async function createAccounts(act) {
  for (const name of ['alice', 'bob', 'carol']) await act.createAccount(name);
  return Object.fromEntries(act.users);
}

/**
 * Phase 1, while contrail runs: one of everything (after createAccounts).
 * @param {Activity} act
 */
export async function phaseOne(act) {
  const { alice, bob, carol } = Object.fromEntries(act.users);

  await act.upsertProfile(alice, { displayName: 'Alice', description: 'first profile, with an avatar', avatar: await act.uploadPng(alice) }, 'profile with avatar');
  await act.upsertProfile(bob, { displayName: 'Bob' });

  const hello = await act.post(alice, {
    // non-BMP characters, HTML-sensitive characters and U+2028 all have to survive JSON twice
    text: 'hello from alice ✨ <b>&amp;</b> \u2028 line separator, 😀 emoji',
    langs: ['en', 'fr'],
  });
  const withFacets = await act.postWithFacets(bob, carol);
  await act.post(carol, {
    text: 'a link card',
    embed: { $type: 'app.bsky.embed.external', external: { uri: 'https://example.com/article', title: 'An article', description: 'external embed' } },
  }, 'post with external embed');
  const imagePost = await act.post(alice, {
    text: 'a picture',
    embed: { $type: 'app.bsky.embed.images', images: [{ image: await act.uploadPng(alice), alt: 'one pixel', aspectRatio: { width: 1, height: 1 } }] },
  }, 'post with image');
  const quote = await act.post(bob, { text: 'quoting alice', embed: { $type: 'app.bsky.embed.record', record: { uri: hello.uri, cid: hello.cid } } }, 'quote post');
  await act.post(carol, { text: 'replying to alice', reply: { root: { uri: hello.uri, cid: hello.cid }, parent: { uri: hello.uri, cid: hello.cid } } }, 'reply');

  const like = await act.like(alice, quote);
  await act.repost(bob, hello);
  const follow = await act.follow(alice, bob);
  await act.follow(bob, carol);
  await act.follow(carol, alice);

  await act.editPost(alice, hello, 'hello from alice (edited)');
  await act.batch(bob, { deletePost: withFacets });
  const block = await act.block(carol, bob);
  await act.remove(carol, block.uri, 'block');
  await act.remove(alice, like.uri, 'like');
  await act.remove(alice, follow.uri, 'follow');
  await act.remove(alice, imagePost.uri, 'post');
  await act.upsertProfile(alice, { description: 'second edit; the avatar stays' }, 'profile edit');

  // The atproto data model at its edges, in a collection no lexicon checks.
  await act.createOther(carol, 'edges', {
    text: 'quotes " backslash \\ tab \t newline \n <script>&</script> \u2028\u2029 é 中文 😀',
    integers: [0, -1, 42, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER],
    flags: [true, false],
    nothing: null,
    empty: { object: {}, array: [], string: '' },
    bytes: { $bytes: 'aGVsbG8gd29ybGQ' },
    link: { $link: hello.cid },
    deep: { a: { b: { c: { d: { e: 'deep' } } } } },
    // Key order: Jetstream (Go) sorts map keys by their UTF-8 bytes.
    Zebra: 1,
    apple: 2,
    'key with spaces': 3,
    'ümlaut': 4,
  });
  // Keys where UTF-8 byte order and JavaScript's default (UTF-16) sort disagree: U+FF01 sorts
  // before U+1F600 in UTF-8 (EF… < F0…) but after it in UTF-16 (FF01 > D83D).
  await act.createOther(carol, 'key-order', { '\uff01fullwidth': 1, '😀emoji': 2, plain: 3 }, 'UTF-8 key order record');

  await act.changeHandle(carol, 'carol-1.test');
  await act.deactivateAndActivate(bob);
  await act.sentinel(carol, 1);
  return { alice, bob, carol };
}

/** Phase 2, written while contrail is stopped: it must catch up from the PDS's backlog. */
export async function phaseTwo(act) {
  const { alice, bob, carol } = Object.fromEntries(act.users);
  const dave = await act.createAccount('dave');
  const post = await act.post(alice, { text: 'written while contrail was down' });
  await act.like(dave, post);
  await act.follow(bob, dave);
  await act.changeHandle(carol, 'carol-2.test');
  await act.sentinel(carol, 2);
  return { dave };
}
