/**
 * The pieces the Verifier's tests share: the gateway's resync and one with no PDS behind it, a DID
 * document as the PLC directory serves it, a directory whose key rotates under its requests, a
 * fresh identity cache (removed after the test), an #identity event, and a Verifier with one that
 * records what it lets through.
 */
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { FetchLimits } from '../../src/backfill/index.ts';
import { resyncRepo } from '../../src/gateway.ts';
import { IdentityCache, IdentityResolver } from '../../src/identity/index.ts';
import { decodeFrame, parseMessage, type UpstreamMessage } from '../../src/upstream/index.ts';
import { createVerifyMetrics, SigningKeys, Verifier, type ResyncedRepo } from '../../src/verify/index.ts';
import { cleanup } from './cleanup.ts';
import { tempDir } from './gateway.ts';
import { localHttpServer } from './local-http.ts';
import { commitFrameOf, type CommitBody } from './signed-repo.ts';

/** The limits the Verifier tests resync within: one try, so a PDS that fails fails the resync. */
const RESYNC_LIMITS: FetchLimits = { maxBytes: 10_000_000, timeoutMs: 10_000, attempts: 1, backoffMs: 100, maxRetryAfterMs: 1_000, allowPrivateEndpoints: true };

/** The gateway's resync (resyncRepo): the repo from the PDS its DID document names, its commit checked with the DID's key. */
export function gatewayResync(identity: IdentityResolver): (did: string) => Promise<ResyncedRepo> {
  const keys = new SigningKeys();
  return (did) => resyncRepo(did, identity, keys, RESYNC_LIMITS);
}

/** The DID document naming `signingKey` (a did:key) as the #atproto key, and the PDS if given. */
export function didDocument(did: string, signingKey: string, pdsUrl?: string): string {
  const service = pdsUrl ? [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: pdsUrl }] : [];
  return JSON.stringify({ id: did, verificationMethod: [{ id: '#atproto', type: 'Multikey', controller: did, publicKeyMultibase: signingKey.slice('did:key:'.length) }], service });
}

/**
 * A PLC-style directory on 127.0.0.1 whose #atproto key the test rotates (`directory.key = …`):
 * each request is answered with the document as of its arrival, and with `holdNext` set the next
 * answer waits in `held` until the test calls it (a fetch that began before a rotation).
 */
export async function rotatingDirectory(t: TestContext, key: string): Promise<{ url: string; directory: { key: string; holdNext: boolean; held: (() => void)[]; requests: number } }> {
  const directory = { key, holdNext: false, held: [] as (() => void)[], requests: 0 };
  const { url } = await localHttpServer(t, (req, res) => {
    directory.requests++;
    const document = didDocument(decodeURIComponent(req.url!.slice(1)), directory.key); // as of this request
    const answer = () => res.end(document);
    if (directory.holdNext) {
      directory.holdNext = false;
      directory.held.push(answer);
    } else {
      answer();
    }
  });
  return { url, directory };
}

/** An IdentityCache in a temp dir of its own (named from `prefix`), closed and removed by the test's cleanup, `defer`. */
export function identityCacheUnderTest(defer: (step: () => unknown) => void, prefix: string): IdentityCache {
  const dir = tempDir(prefix);
  defer(() => dir.remove());
  const cache = new IdentityCache({ path: dir.path, maxEntries: 1000 });
  defer(() => cache.close());
  return cache;
}

type VerifierOptions = ConstructorParameters<typeof Verifier>[0];

/**
 * A Verifier resolving keys from `plcUrl` (failures not remembered unless `failureTtlMs` says; a
 * failing directory retried as the resolver does unless `patientRetriesMs` says), in `full` mode
 * unless told; with `resyncFromPds`, resyncing as the gateway does, from the PDS each DID document
 * names (resyncsStarted counts them as the Verifier starts them).
 */
export function verifierUnderTest(
  t: TestContext,
  plcUrl: string,
  options: Partial<VerifierOptions> & { failureTtlMs?: number; patientRetriesMs?: readonly number[]; resyncFromPds?: true } = {},
) {
  const { failureTtlMs = 0, patientRetriesMs, resyncFromPds, ...rest } = options;
  const cache = identityCacheUnderTest(cleanup(t), 'contrail-verifier-');
  const registry = new Registry();
  const delivered: UpstreamMessage[] = [];
  const identity = new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: true, failureTtlMs, patientRetriesMs });
  const resync = resyncFromPds ? gatewayResync(identity) : undefined;
  let resyncsStarted = 0;
  const verifier = new Verifier({
    mode: 'full',
    identity,
    logger: pino({ level: 'silent' }),
    metrics: createVerifyMetrics(registry),
    deliver: (message) => delivered.push(message),
    ...(resync ? { resync: (did: string) => (resyncsStarted++, resync(did)) } : {}),
    ...rest,
  });
  return { verifier, delivered, registry, resyncsStarted: () => resyncsStarted };
}

/** A resync with no PDS behind it: each fails, the DID it was asked for pushed onto `asked` (the repos that went out of sync). */
export function resyncWithoutPds(asked: string[]): (did: string) => Promise<ResyncedRepo> {
  return async (did) => {
    asked.push(did);
    throw new Error('no PDS in this test');
  };
}

/** An #identity event for `did` (a handle change, say: it names no key, so the Verifier fetches the document again). */
export function identityEventOf(did: string, seq: number): UpstreamMessage {
  return { type: 'identity', seq, did, time: new Date().toISOString() };
}

/** A commit body as the relay's frame carries it, parsed as the upstream reader parses it. */
export function commitOf(body: CommitBody): UpstreamMessage {
  return parseMessage(decodeFrame(commitFrameOf(body), 10_000_000));
}
