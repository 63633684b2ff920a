/**
 * A #commit's `rev` is a TID (subscribeRepos' lexicon), and the Ingester keeps each repo's newest
 * rev for good (the `revs` table is not trimmed) to skip commits that are not newer. TIDs sort as
 * strings, so a rev that is no TID can sort above every real one: one such frame from a broken or
 * hostile relay made every later commit of the repo a `stale_rev` skip, for as long as the buffer
 * lived. It is a malformed frame: counted and logged as `bad_field`, and the repo goes on.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commitFrame, syncFrame, tidFor } from './support/frames.ts';
import { ALICE, BOB, POST, httpGet, readWholeStream, recordFor, withGateway } from './support/subscribe-client.ts';

test('a commit whose rev is no TID is a counted drop, and does not silence the repo\'s later commits', () =>
  withGateway({}, {}, async ({ gateway, up, relay }) => {
    const first = up.create(ALICE, POST);
    const notTid = 'zzzzzzzzzzzzzzzzzzzz';
    const bad = up.frame((seq) => commitFrame({ seq, repo: ALICE, rev: notTid, ops: [{ action: 'create', path: `${POST}/${tidFor(900)}`, record: recordFor(POST, 900, ALICE) }] }));
    // A #sync names a rev too; a repo state no TID names is no state.
    const badSync = ++up.seq;
    relay.push({ seq: badSync, bytes: syncFrame({ seq: badSync, did: BOB, rev: notTid }) });
    const later = [up.create(ALICE, POST), up.create(ALICE, POST), up.create(ALICE, POST)];
    await up.settle();

    const stored = (await readWholeStream(gateway.port, 'wantedKinds=commit&wantedKinds=sync')).map((event) => {
      const { commit, sync } = JSON.parse(event.raw) as { commit?: { rev: string }; sync?: { rev: string } };
      return { did: event.did, rev: (commit ?? sync)!.rev };
    });
    assert.deepEqual(
      stored,
      [first, ...later].map((seq) => ({ did: ALICE, rev: tidFor(seq * 10) })),
      `the repo's commits after the one whose rev is ${JSON.stringify(notTid)} (seq ${bad}) are stored, and neither frame naming that rev is`,
    );
    const metrics = (await httpGet(gateway.metricsPort, '/metrics')).body.toString();
    assert.match(metrics, /^contrail_ingest_drops_total\{reason="bad_field"\} 2$/m, 'both frames are counted as malformed');
    assert.doesNotMatch(metrics, /^contrail_ingest_skipped_total\{reason="stale_rev"\} [1-9]/m, 'no later commit was skipped as not newer');
  }));
