// `--verify full` against the real thing: a real PLC and PDS, contrail reading the PDS's
// firehose through a relay that corrupts the commits it is told to. Everything the PDS signs
// must come through exactly as without verification, each repo's events in their order (a new
// account waits for its key while other repos go on); every corrupted commit must be rejected
// with its reason and its repo resynced from the PDS (getLatestCommit, getBlocks); a signing key rotated
// through the real PLC must be followed without losing a commit.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { updateAtprotoKeyOp } from '@did-plc/lib';
import { Secp256k1Keypair } from '@atproto/crypto';
import { Activity, SENTINEL_COLLECTION, createAccounts, phaseOne } from './lib/activity.mjs';
import { killAll, startContrail, tail, waitReady } from './lib/contrail.mjs';
import { startCorruptingRelay } from './lib/corrupting-relay.mjs';
import { assertEventsMatchPerRepo } from './lib/expect.mjs';
import { startNetwork } from './lib/network.mjs';
import { RawSubscriber, subscribeUrl } from './lib/subscribe.mjs';

const isSentinel = (phase) => (event) =>
  event.kind === 'commit' && event.commit.collection === SENTINEL_COLLECTION && event.commit.rkey === `sentinel-${phase}`;

describe('--verify full against a real PDS and PLC', { timeout: 150_000 }, () => {
  let tmp;
  let network;
  let relay;
  let contrail;
  let act;
  let subscriber;

  /** contrail's counters, e.g. metric('contrail_verify_failures_total{reason="bad_signature"}') (0 when absent). */
  const metric = async (series) => {
    const text = await (await fetch(`http://127.0.0.1:${contrail.metricsPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line ? Number(line.slice(series.length + 1)) : 0;
  };
  const failures = (reason) => metric(`contrail_verify_failures_total{reason="${reason}"}`);
  const commitTexts = () => subscriber.frames.filter((f) => f.event.kind === 'commit' && f.event.commit.record?.text).map((f) => f.event.commit.record.text);

  before(async () => {
    tmp = await fs.mkdtemp(path.join(process.env.E2E_TMPDIR ?? os.tmpdir(), 'contrail-e2e-verify-'));
    network = await startNetwork({ dataDir: path.join(tmp, 'pds') });
    relay = await startCorruptingRelay(network.firehoseUrl);
    contrail = await startContrail({
      upstream: relay.url,
      dataDir: path.join(tmp, 'contrail'),
      extraArgs: ['--verify', 'full', '--plc-url', network.plcUrl, '--allow-private-endpoints'],
    });
    await waitReady(contrail.httpUrl);
    act = new Activity(network.pdsUrl);
    subscriber = new RawSubscriber(subscribeUrl(contrail.wsUrl, {}));
    await subscriber.opened;
  });

  after(async () => {
    subscriber?.socket.terminate();
    await contrail?.stop().catch(() => {});
    await killAll();
    await relay?.close();
    await network?.close();
    await fs.rm(tmp, { recursive: true, force: true });
  });

  test('everything the real PDS signs comes through, exactly as written, each repo in its order', async () => {
    await createAccounts(act);
    await phaseOne(act);
    await subscriber.waitFor(isSentinel(1), 'sentinel 1', 60_000);
    // Each new account's first commit waits for its key from the PLC while the other repos go
    // on, so a repo may come out after carol's sentinel: wait for every expected event (if
    // some never come, the comparison names them).
    const events = await subscriber
      .waitFor((event) => subscriber.events.indexOf(event) === act.expected.length - 1, `${act.expected.length} events`, 30_000)
      .catch(() => subscriber.frames);
    assertEventsMatchPerRepo(events.map((f) => f.event), act.expected, 'verified stream');
    for (const reason of ['bad_signature', 'bad_inversion', 'bad_commit', 'rev_mismatch', 'bad_op_prev', 'op_not_in_tree', 'missing_prev_data', 'unknown_key', 'out_of_sync']) {
      assert.equal(await failures(reason), 0, `${reason} failures\n${tail(contrail.logs)}`);
    }
    // Every commit event's rev names a commit that passed (a multi-op commit makes several events).
    const commits = new Set(events.filter((f) => f.event.kind === 'commit').map((f) => `${f.event.did} ${f.event.commit.rev}`));
    assert.ok((await metric('contrail_verify_passed_total{type="commit"}')) >= commits.size);
    assert.ok((await metric('contrail_verify_passed_total{type="sync"}')) >= 3, 'the #sync of every new account verified');
  });

  test('a forged signature, a broken MST proof and a rewritten rev are rejected; the repo is resynced from the real PDS (getLatestCommit and getBlocks)', async () => {
    const users = Object.fromEntries(act.users);
    const cases = [
      [users.alice, 'signature', 'bad_signature'],
      [users.bob, 'proof', 'bad_inversion'],
      [users.carol, 'rev', 'rev_mismatch'],
    ];
    const resynced = () => metric('contrail_verify_resyncs_total{result="resynced"}');
    for (const [user, kind, reason] of cases) {
      const before = await resynced();
      relay.corruptNext(user.did, kind);
      await user.agent.post({ text: `${kind}: corrupted by the relay`, createdAt: new Date().toISOString() });
      // The repo goes out of sync and is fetched again from its PDS; commits after that snapshot pass.
      for (const deadline = Date.now() + 30_000; (await resynced()) === before; ) {
        assert.ok(Date.now() < deadline, `${kind}: no resync within 30 s\n${tail(contrail.logs)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await user.agent.post({ text: `${kind}: after the resync`, createdAt: new Date().toISOString() });
      await subscriber
        .waitFor((e) => e.kind === 'commit' && e.commit.record?.text === `${kind}: after the resync`, `${kind}: the post after the resync`, 30_000)
        .catch((err) => assert.fail(`${err.message}\n${tail(contrail.logs)}`));
      assert.equal(await failures(reason), 1, `${kind} counted as ${reason}`);
    }
    assert.deepEqual(relay.corrupted.map((c) => c.kind), ['signature', 'proof', 'rev']);
    const texts = commitTexts();
    for (const [, kind] of cases) assert.ok(!texts.includes(`${kind}: corrupted by the relay`), `the ${kind}-corrupted commit was not emitted`);
    assert.equal(await failures('out_of_sync'), 0, 'no commit came while a repo was out of sync');
    assert.equal(await metric('contrail_verify_resyncs_total{result="failed"}'), 0);
    assert.equal(await metric('contrail_verify_out_of_sync_repos'), 0);
  });

  test('a signing key rotated through the real PLC is followed', async () => {
    const { alice } = Object.fromEntries(act.users);
    const { pds } = network;
    // The PDS signs with the key in the repo's key file; the PLC is told with a signed operation.
    const rotated = await Secp256k1Keypair.create({ exportable: true });
    const { keyLocation } = await pds.ctx.actorStore.getLocation(alice.did);
    await fs.writeFile(keyLocation, await rotated.export());
    const lastOp = await pds.ctx.plcClient.getLastOp(alice.did);
    await pds.ctx.plcClient.sendOperation(alice.did, await updateAtprotoKeyOp(lastOp, pds.ctx.plcRotationKey, rotated.did()));
    const refreshes = await metric('contrail_verify_key_refreshes_total');
    const forged = await failures('bad_signature');

    await alice.agent.post({ text: 'signed with the rotated key', createdAt: new Date().toISOString() });
    await subscriber.waitFor((e) => e.kind === 'commit' && e.commit.record?.text === 'signed with the rotated key', 'the post signed with the new key', 30_000);
    assert.equal(await metric('contrail_verify_key_refreshes_total'), refreshes + 1, 'the signature failed with the cached key, so the document was fetched again');
    assert.equal(await failures('bad_signature'), forged, 'no valid commit was dropped');
  });
});
