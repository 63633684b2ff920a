/**
 * Review (session 16): the Verifier remembers up to 500,000 repos, counted, not weighed, and a DID
 * may be up to 2,048 characters (the upstream checks only DID syntax). A relay flooding commits of
 * distinct made-up DIDs had each one resolved (a request to the PLC directory) and remembered as
 * out of sync: measured 3,024 bytes a repo with 2,048-character DIDs against 1,109 with 32, so
 * ~1.5 GB at the bound. atproto resolves only did:plc (32 characters) and did:web (a host of at
 * most 253): a commit of any other DID, or of one too long to be either, fails as unknown_key at
 * once (longer than 269 characters: did:web: and a 253-character host with a port), asks the directory
 * nothing and leaves no state behind.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commitFrame, tidFor } from './support/frames.ts';
import { decodeFrame, parseMessage } from '../src/upstream/index.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { verifierUnderTest } from './support/verifier-harness.ts';

test('a commit of a DID atproto cannot resolve (another method, or too long for did:plc or did:web) fails as unknown_key without a lookup or remembered state', async (t) => {
  let lookups = 0;
  const { url: plcUrl } = await localHttpServer(t, (_req, res) => {
    lookups++;
    res.writeHead(404).end();
  });
  const { verifier, registry } = verifierUnderTest(t, plcUrl);
  // The did:web's host is no host name either, so the code before this change refused it without a DNS lookup.
  const dids = [`did:plc:${'a'.repeat(2_040)}`, `did:web:${'a_'.repeat(150)}.example`, 'did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme', 'did:example:alice'];
  let seq = 0;
  for (const did of dids) verifier.handle(parseMessage(decodeFrame(commitFrame({ seq: ++seq, repo: did, rev: tidFor(seq), ops: [] }), 10_000)));
  const failures = async () => Number(/contrail_verify_failures_total\{reason="unknown_key"\} (\d+)/.exec(await registry.metrics())?.[1] ?? 0);
  await waitUntil(async () => (await failures()) === dids.length, `${dids.length} unknown_key failures`);
  await verifier.idle();
  assert.equal(lookups, 0, 'the directory was asked');
  for (const did of dids) assert.equal(verifier.outOfSync(did), undefined, `${did.slice(0, 40)}… is remembered`);
  assert.match(await registry.metrics(), /contrail_verify_out_of_sync_repos 0\n/);
});
