/**
 * The pieces the Verifier's tests share: a DID document as the PLC directory serves it, and a
 * Verifier with a fresh identity cache (removed after the test) that records what it lets through.
 */
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { IdentityCache, IdentityResolver } from '../../src/identity/index.ts';
import { decodeFrame, parseMessage, type UpstreamMessage } from '../../src/upstream/index.ts';
import { createVerifyMetrics, Verifier } from '../../src/verify/index.ts';
import { tempDir } from './gateway.ts';
import { commitFrameOf, type CommitBody } from './signed-repo.ts';

/** The DID document naming `signingKey` (a did:key) as the #atproto key, and the PDS if given. */
export function didDocument(did: string, signingKey: string, pdsUrl?: string): string {
  const service = pdsUrl ? [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: pdsUrl }] : [];
  return JSON.stringify({ id: did, verificationMethod: [{ id: '#atproto', type: 'Multikey', controller: did, publicKeyMultibase: signingKey.slice('did:key:'.length) }], service });
}

type VerifierOptions = ConstructorParameters<typeof Verifier>[0];

/** A Verifier resolving keys from `plcUrl` (failures not remembered unless `failureTtlMs` says), in `full` mode unless told. */
export function verifierUnderTest(t: TestContext, plcUrl: string, options: Partial<VerifierOptions> & { failureTtlMs?: number } = {}) {
  const { failureTtlMs = 0, ...rest } = options;
  const dir = tempDir('contrail-verifier-');
  const cache = new IdentityCache({ path: dir.path, maxEntries: 1000 });
  t.after(async () => {
    await cache.close();
    dir.remove();
  });
  const registry = new Registry();
  const delivered: UpstreamMessage[] = [];
  const verifier = new Verifier({
    mode: 'full',
    identity: new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: true, failureTtlMs }),
    logger: pino({ level: 'silent' }),
    metrics: createVerifyMetrics(registry),
    deliver: (message) => delivered.push(message),
    ...rest,
  });
  return { verifier, delivered, registry };
}

/** A commit body as the relay's frame carries it, parsed as the upstream reader parses it. */
export function commitOf(body: CommitBody): UpstreamMessage {
  return parseMessage(decodeFrame(commitFrameOf(body), 10_000_000));
}
