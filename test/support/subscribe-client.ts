/**
 * Client-side helpers for the /subscribe tests: a recording WebSocket subscriber, a raw HTTP
 * upgrade request (to read a refusal's status and body), a scripted upstream that numbers its
 * frames, and an independent brute-force implementation of Jetstream's filter rules to compute
 * what a subscriber should have received.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { CID } from 'multiformats/cid';
import { create as createDigest } from 'multiformats/hashes/digest';
import { WebSocket } from 'ws';
import type { GatewayConfig } from '../../src/config.ts';
import type { Gateway, GatewayTuning } from '../../src/gateway.ts';
import { seriesLine } from './exposition.ts';
import { FakeRelay } from './fake-relay.ts';
import { startTestGateway, tempDir } from './gateway.ts';
import { accountFrame, commitFrame, identityFrame, syncFrame, tidFor, type OpSpec } from './frames.ts';
import { SyntheticFirehose } from './synthetic.ts';

import { waitUntil } from './poll.ts';

export { waitUntil };

export interface Received {
  data: Buffer;
  binary: boolean;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

export interface ConnectOptions {
  headers?: Record<string, string>;
  /** false: do not answer the server's pings (a dead peer). */
  autoPong?: boolean;
  /** The WebSocket path (default /subscribe). */
  path?: string;
  /** Offer permessage-deflate (default: no). */
  perMessageDeflate?: boolean;
  protocols?: string[];
}

export const SUBSCRIBE_EVENTS = '/xrpc/network.bsky.jetstream.subscribeEvents';

/** One subscriber that records every message it receives. */
export class Subscription {
  /** Every subscription not yet closed, so a failed test's leftovers can be closed after it. */
  static readonly #open = new Set<Subscription>();
  readonly messages: Received[] = [];
  readonly closed: Promise<CloseInfo>;
  closeInfo: CloseInfo | undefined;
  pingsReceived = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, binary: boolean) => this.messages.push({ data, binary }));
    ws.on('ping', () => this.pingsReceived++);
    ws.on('error', () => {}); // the close event carries what the tests look at
    Subscription.#open.add(this);
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        Subscription.#open.delete(this);
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
      }),
    );
  }

  /** Cuts every subscription still open: a leftover may be paused, and would never finish a close handshake. */
  static async closeAll(): Promise<void> {
    const open = [...Subscription.#open];
    for (const s of open) s.ws.terminate();
    await Promise.all(open.map((s) => s.closed));
  }

  static async open(port: number, query = '', options: ConnectOptions = {}): Promise<Subscription> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${options.path ?? '/subscribe'}${query ? `?${query}` : ''}`, options.protocols ?? [], {
      headers: options.headers,
      autoPong: options.autoPong ?? true,
      perMessageDeflate: options.perMessageDeflate ?? false,
      handshakeTimeout: 10_000,
    });
    const subscription = new Subscription(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
    return subscription;
  }

  /** The close, waited for at most timeoutMs. */
  async waitClosed(timeoutMs = 20_000): Promise<CloseInfo> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the connection was not closed within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Text messages parsed as JSON. */
  get events(): Array<Record<string, any>> {
    return this.messages.filter((m) => !m.binary).map((m) => JSON.parse(m.data.toString('utf8')));
  }

  get texts(): string[] {
    return this.messages.filter((m) => !m.binary).map((m) => m.data.toString('utf8'));
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Waits until the newest text event has time_us >= timeUs. */
  async waitForTime(timeUs: number, what = `an event at time_us ${timeUs}`, timeoutMs?: number): Promise<void> {
    await waitUntil(() => this.newestTimeUs() >= timeUs, what, timeoutMs);
  }

  async waitForCount(count: number, what = `${count} messages`, timeoutMs?: number): Promise<void> {
    await waitUntil(() => this.messages.length >= count, `${what} (have ${this.messages.length})`, timeoutMs);
  }

  newestTimeUs(): number {
    for (let i = this.messages.length - 1; i >= 0; i--) {
      if (!this.messages[i]!.binary) return JSON.parse(this.messages[i]!.data.toString('utf8')).time_us ?? 0;
    }
    return 0;
  }

  /**
   * A ping/pong round trip. TCP keeps order both ways, so when the pong arrives the server has
   * handled everything this client sent before, and everything it sent before the pong is here.
   */
  async roundTrip(timeoutMs = 10_000): Promise<void> {
    const pong = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no pong')), timeoutMs);
      this.ws.once('pong', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.ws.ping();
    await pong;
  }

  send(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else this.ws.close();
    await this.waitClosed();
  }
}

/** The raw TCP socket under a `ws` client: pause it to make a peer that stops reading; bytesRead is what crossed the wire. */
export function tcpSocket(subscription: Subscription): Socket {
  return (subscription.ws as unknown as { _socket: Socket })._socket;
}

/** Waits until every subscriber has examined the whole store, then until all it sent has arrived. */
export async function settleSubscribers(gateway: Gateway, subscriptions: Subscription[]): Promise<void> {
  await waitUntil(() => gateway.server.hub.counts().every((c) => c.mode !== 'replay' && c.mode !== 'blocked'), 'every subscriber to reach the live tip');
  await Promise.all(subscriptions.map((s) => s.roundTrip()));
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A WebSocket upgrade request by hand: resolves with the HTTP answer, or status 101 if it upgraded. */
export function upgradeRequest(port: number, pathAndQuery: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: pathAndQuery,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-key': randomBytes(16).toString('base64'),
        'sec-websocket-version': '13',
        ...headers,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.alloc(0) });
    });
    req.on('response', (res) => collectResponse(res, resolve, reject));
    req.on('error', reject);
    req.end();
  });
}

/** A GET on a fresh connection (no keep-alive pool: a test may restart a gateway on the same port). */
export function httpGet(port: number, path: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => collectResponse(res, resolve, reject));
    req.on('error', reject);
    req.end();
  });
}

export interface Stats {
  oldestTimeUs?: number;
  newestTimeUs?: number;
  eventCount: number;
  /** Bytes of LMDB pages the buffer occupies. */
  bytes: number;
  subscribers: number;
  trimmedUpTo: number;
  upstreamCursor: { seq: number } | null;
}

export async function stats(port: number): Promise<Stats> {
  return JSON.parse((await httpGet(port, '/stats')).body.toString());
}

/** One series's value (its name and labels as /metrics writes them) in a gateway's /metrics; fails when it is not exposed. */
export async function exposedMetric(metricsPort: number, series: string): Promise<number> {
  const line = seriesLine((await httpGet(metricsPort, '/metrics')).body.toString(), series);
  assert.ok(line, `${series} is exposed`);
  return Number(line.split(' ')[1]);
}

/** A did:plc for a test account by name (did:plc:alice…). */
export const testDid = (name: string) => `did:plc:${name.padEnd(24, 'a')}`;
export const ALICE = testDid('alice');
export const BOB = testDid('bob');
export const CAROL = testDid('carol');

/** A FakeRelay, a gateway in a temp dir reading it (connected), and an Upstream to push frames through the relay. */
export interface RelayGateway {
  relay: FakeRelay;
  dir: { path: string; remove(): void };
  /** A test may replace it (a restart): the Upstream and stopRelayGateway follow. */
  gateway: Gateway;
  up: Upstream;
}

export async function startRelayGateway(overrides: Partial<GatewayConfig>, tuning: GatewayTuning = {}): Promise<RelayGateway> {
  const relay = await FakeRelay.start();
  const dir = tempDir();
  const h: RelayGateway = { relay, dir, gateway: await startTestGateway(relay.url, dir.path, overrides, tuning), up: new Upstream(relay, () => h.gateway.port) };
  try {
    await relay.waitForConnections(1);
  } catch (err) {
    await stopRelayGateway(h);
    throw err;
  }
  return h;
}

/** Closes the test's subscriptions and stops and removes what startRelayGateway started (what of it there is). */
export async function stopRelayGateway(h: Partial<RelayGateway>): Promise<void> {
  await Subscription.closeAll();
  await h.gateway?.stop();
  await h.relay?.stop();
  h.dir?.remove();
}

/**
 * A relay, a gateway reading it and an Upstream to push frames, for one test: fn runs with
 * them, and they are stopped and removed afterwards whatever happens. fn may replace
 * `h.gateway` (a restart); the one there at the end is stopped.
 */
export async function withGateway(overrides: Partial<GatewayConfig>, tuning: GatewayTuning, fn: (h: RelayGateway) => Promise<void>): Promise<void> {
  const h = await startRelayGateway(overrides, tuning);
  try {
    await fn(h);
  } finally {
    await stopRelayGateway(h);
  }
}

export const POST = 'app.bsky.feed.post';
export const LIKE = 'app.bsky.feed.like';
export const REPOST = 'app.bsky.feed.repost';
export const FOLLOW = 'app.bsky.graph.follow';

/** A real CIDv1 (dag-cbor, sha2-256) string, for record references. */
export function fakeCid(n: number): string {
  return CID.createV1(0x71, createDigest(0x12, createHash('sha256').update(`record ${n}`).digest())).toString();
}

/** A realistic record for a collection. */
export function recordFor(collection: string, n: number, did: string): Record<string, unknown> {
  const createdAt = new Date(Date.UTC(2026, 10, 25, 12, 0, n % 60, n % 1000)).toISOString();
  switch (collection) {
    case POST:
      return { $type: POST, createdAt, langs: ['en'], text: `post number ${n}` };
    case LIKE:
    case REPOST:
      return { $type: collection, createdAt, subject: { cid: fakeCid(n), uri: `at://${did}/app.bsky.feed.post/${tidFor(n)}` } };
    case FOLLOW:
      return { $type: FOLLOW, createdAt, subject: did };
    default:
      return { $type: collection, createdAt };
  }
}

/**
 * The #commit of `seq` in which ALICE creates a post (its rkey and the rev grow with the seq): an
 * upstream test's plain frame. `text` replaces the post's text (a frame of a chosen size), `time`
 * the frame's time (the relay's string).
 */
export function alicePostCommit(seq: number, { text, time }: { text?: string; time?: string } = {}): Uint8Array {
  const record = { ...recordFor(POST, seq, ALICE), ...(text === undefined ? {} : { text }) };
  return commitFrame({ seq, repo: ALICE, rev: tidFor(seq * 10), time, ops: [{ action: 'create', path: `${POST}/${tidFor(seq)}`, record }] });
}

/**
 * Pushes numbered frames to a FakeRelay and waits until the gateway has stored them (its saved
 * upstream cursor is committed in the same transaction as the events).
 */
export class Upstream {
  seq = 0;
  #rkey = 0;

  constructor(
    readonly relay: FakeRelay,
    readonly gatewayPort: () => number,
  ) {}

  commit(did: string, ops: Array<{ collection: string; action?: OpSpec['action']; record?: Record<string, unknown> }>): number {
    const seq = ++this.seq;
    const specs: OpSpec[] = ops.map(({ collection, action = 'create', record }) => {
      const rkey = tidFor(++this.#rkey);
      return { action, path: `${collection}/${rkey}`, record: action === 'delete' ? undefined : (record ?? recordFor(collection, this.#rkey, did)) };
    });
    this.relay.push({ seq, bytes: commitFrame({ seq, repo: did, rev: tidFor(seq * 10), ops: specs }) });
    return seq;
  }

  create(did: string, collection: string, record?: Record<string, unknown>): number {
    return this.commit(did, [{ collection, record }]);
  }

  identity(did: string, handle?: string): number {
    const seq = ++this.seq;
    this.relay.push({ seq, bytes: identityFrame({ seq, did, handle }) });
    return seq;
  }

  account(did: string, active: boolean, status?: string): number {
    const seq = ++this.seq;
    this.relay.push({ seq, bytes: accountFrame({ seq, did, active, status }) });
    return seq;
  }

  /** A #sync: the repo now stands at a commit (rev above every earlier frame's). */
  sync(did: string): number {
    const seq = ++this.seq;
    this.relay.push({ seq, bytes: syncFrame({ seq, did, rev: tidFor(seq * 10) }) });
    return seq;
  }

  /** Pushes a frame made for the next seq (e.g. a real frame given a new seq). */
  frame(make: (seq: number) => Uint8Array): number {
    const seq = ++this.seq;
    this.relay.push({ seq, bytes: make(seq) });
    return seq;
  }

  /** Pushes `count` frames of the realistic synthetic stream (seeded; `accounts` distinct DIDs). */
  synthetic(count: number, seed: number, accounts = 200): void {
    const firehose = new SyntheticFirehose({ seed, accounts, firstSeq: this.seq + 1 });
    for (const frame of firehose.frames(count)) this.relay.push({ seq: frame.seq, bytes: frame.bytes });
    this.seq += count;
  }

  /** Resolves once everything pushed so far is stored. */
  async settle(timeoutMs?: number): Promise<Stats> {
    let last: Stats | undefined;
    await waitUntil(
      async () => {
        last = await stats(this.gatewayPort());
        return (last.upstreamCursor?.seq ?? 0) >= this.seq;
      },
      `the gateway to store upstream seq ${this.seq}`,
      timeoutMs,
    );
    return last!;
  }
}

/** Jetstream's filter rules, written independently of src/server/filter.ts. */
export interface FilterSpec {
  wantedCollections?: string[];
  wantedDids?: string[];
  /** Absent or empty: v1's kinds (no sync). */
  wantedKinds?: string[];
  maxMessageSizeBytes?: number;
}

export const V1_KINDS = ['commit', 'identity', 'account'];
/** The query that asks /subscribe and the HTTP streams for every kind, #sync included. */
export const ALL_KINDS_QUERY = 'wantedKinds=commit&wantedKinds=identity&wantedKinds=account&wantedKinds=sync';

export interface StoredEvent {
  raw: string;
  timeUs: number;
  did: string;
  kind: string;
  collection?: string;
}

export function storedEvent(raw: string): StoredEvent {
  const event = JSON.parse(raw);
  return { raw, timeUs: event.time_us, did: event.did, kind: event.kind, collection: event.commit?.collection };
}

export function wants(filter: FilterSpec, event: StoredEvent): boolean {
  const { wantedCollections = [], wantedDids = [], wantedKinds = [], maxMessageSizeBytes = 0 } = filter;
  if (!(wantedKinds.length > 0 ? wantedKinds : V1_KINDS).includes(event.kind)) return false;
  if (maxMessageSizeBytes > 0 && Buffer.byteLength(event.raw) > maxMessageSizeBytes) return false;
  if (wantedDids.length > 0 && !wantedDids.includes(event.did)) return false;
  if (event.kind !== 'commit' || wantedCollections.length === 0) return true;
  return wantedCollections.some((wanted) => (wanted.endsWith('.*') ? event.collection!.startsWith(wanted.slice(0, -1)) : event.collection === wanted));
}

export function queryFor(filter: FilterSpec, extra: Record<string, string | number | undefined> = {}): string {
  const query = new URLSearchParams();
  for (const collection of filter.wantedCollections ?? []) query.append('wantedCollections', collection);
  for (const did of filter.wantedDids ?? []) query.append('wantedDids', did);
  for (const kind of filter.wantedKinds ?? []) query.append('wantedKinds', kind);
  if (filter.maxMessageSizeBytes !== undefined) query.append('maxMessageSizeBytes', String(filter.maxMessageSizeBytes));
  for (const [key, value] of Object.entries(extra)) if (value !== undefined) query.append(key, String(value));
  return query.toString();
}

/**
 * Every stored event of v1's kinds, read by an unfiltered replay from the oldest; with
 * ALL_KINDS_QUERY, #sync events too (the newest stored event must be of a kind asked for).
 */
export async function readWholeStream(port: number, kindsQuery = ''): Promise<StoredEvent[]> {
  const { newestTimeUs } = await stats(port);
  const reader = await Subscription.open(port, kindsQuery ? `cursor=0&${kindsQuery}` : 'cursor=0');
  if (newestTimeUs !== undefined) await reader.waitForTime(newestTimeUs, 'the whole stream');
  await reader.close();
  return reader.texts.map(storedEvent);
}

/**
 * A relay and a gateway reading it (its stop deferred to the test's one cleanup, `defer`), holding a
 * few hundred events of varied sizes, one post far larger than the rest, and the whole stored stream:
 * for the tests of /subscribe's filters and size limit, set by the query or by an options_update.
 */
export async function startGatewayWithStream(defer: (step: () => unknown) => void, transport: 'uws' | 'ws'): Promise<{ h: RelayGateway; stream: StoredEvent[] }> {
  const h = await startRelayGateway({ transport });
  defer(() => stopRelayGateway(h));
  h.up.create(ALICE, POST, { $type: POST, createdAt: '2026-11-25T12:00:00.000Z', text: 'long '.repeat(300) });
  h.up.synthetic(200, 3);
  h.up.create(BOB, POST);
  await h.up.settle();
  const stream = await readWholeStream(h.gateway.port);
  return { h, stream };
}

function collectResponse(res: IncomingMessage, resolve: (result: HttpResult) => void, reject: (err: Error) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
  res.on('error', reject);
}
