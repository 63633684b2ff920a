/**
 * After a machine crash without --fsync the torn buffer is set aside and a new one begins, above
 * every time_us the lost one gave out (store/run-marker.ts). A v2 client resuming with a timestamp
 * it was given before the crash missed the lost buffer's events after it: it must be told, with
 * #info OutdatedCursor, as it is when retention removed them. Its cursor is above the new
 * buffer's trimmedUpTo (nothing was trimmed from it), which alone no longer says so: found by
 * review after the notice was kept for cursors at or below trimmedUpTo
 * (test/server-v2-cursor-before-oldest.test.ts, where no event lay before the oldest).
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { Entry } from '../src/events/index.ts';
import { cleanup } from './support/cleanup.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { bootId, crashedRun } from './support/machine-crash.ts';
import { ALICE, POST, SUBSCRIBE_EVENTS, Subscription, Upstream, upgradeRequest, waitUntil } from './support/subscribe-client.ts';

function identityEvent(timeUs: number, i: number): Entry {
  const did = `did:plc:${String(i).padStart(24, 'l')}`;
  return { timeUs, did, kind: 'identity', collection: null, json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"kind":"identity"}`) };
}

/** A gateway started on a buffer a machine crash set aside, whose ten events (`lost`) are gone. */
async function gatewayAfterCrash(t: TestContext) {
  const defer = cleanup(t);
  const dir = tempDir('contrail-v2-lost-buffer-');
  defer(() => dir.remove());
  const lost = Array.from({ length: 10 }, (_, i) => identityEvent(Date.now() * 1000 - 60_000_000 + i * 1_000, i));
  await crashedRun(dir.path, lost);
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const gateway = await startTestGateway(relay.url, dir.path);
  defer(() => gateway.stop());
  assert.ok(gateway.store.previousRun.setAside, 'the buffer was set aside');
  return { defer, lost, relay, gateway };
}

test('a v2 timestamp cursor the lost buffer gave out, after a machine crash set it aside, gets #info OutdatedCursor', { skip: bootId() === null && 'no boot id on this OS', timeout: 60_000 }, async (t) => {
  const { defer, lost, relay, gateway } = await gatewayAfterCrash(t);
  const up = new Upstream(relay, () => gateway.port);
  await relay.waitForConnections(1);
  up.create(ALICE, POST);
  await up.settle();
  defer(() => Subscription.closeAll());

  // The client held the time_us of the lost buffer's fifth event: the five after it are gone.
  const v2 = await Subscription.open(gateway.port, `cursor=${lost[4]!.timeUs}`, { path: SUBSCRIBE_EVENTS });
  await waitUntil(() => v2.texts.some((text) => JSON.parse(text).payload.$type?.endsWith('#commit')), "the new buffer's event");
  const first = JSON.parse(v2.texts[0]!).payload;
  assert.equal(first.name, 'OutdatedCursor', `an #info first: ${v2.texts[0]!.slice(0, 200)}`);
  assert.match(first.message, /events may have been missed; resuming from seq \d+, the oldest event here/);
});

test('a v2 seq cursor the lost buffer gave out, after a machine crash set it aside, is CursorTooOld, also before the new buffer holds an event', { skip: bootId() === null && 'no boot id on this OS', timeout: 60_000 }, async (t) => {
  const { lost, relay, gateway } = await gatewayAfterCrash(t);
  const given = lost[4]!.seq!;
  const refusal = async (when: string) => {
    const reply = await upgradeRequest(gateway.port, `${SUBSCRIBE_EVENTS}?cursor=${given}`);
    assert.equal(reply.status, 400, `${when}: HTTP ${reply.status} ${reply.body.toString().slice(0, 200)}`);
    const body = JSON.parse(reply.body.toString());
    assert.equal(body.error, 'CursorTooOld', `${when}: ${body.message}`);
    return body.message as string;
  };

  // No event yet: the seq is not a future one (the new buffer numbers its events above the lost one's).
  assert.match(await refusal('before the first event'), new RegExp(`^cursor ${given} is older than this server's buffer`));

  const up = new Upstream(relay, () => gateway.port);
  await relay.waitForConnections(1);
  up.create(ALICE, POST);
  await up.settle();
  const oldest = gateway.store.oldest()!.seq;
  assert.ok(oldest > lost.at(-1)!.seq!, `the new buffer's first seq, ${oldest}, is above the lost buffer's`);
  assert.match(await refusal('after it'), new RegExp(`the oldest seq here is ${oldest}\\b`));
});

test('a v2 seq cursor of the next seq, after a machine crash set the buffer aside and before the new buffer holds an event, starts there without a FutureCursor notice; one past it names that next seq', { skip: bootId() === null && 'no boot id on this OS', timeout: 60_000 }, async (t) => {
  const { defer, relay, gateway } = await gatewayAfterCrash(t);
  defer(() => Subscription.closeAll());
  const next = gateway.store.setAsideSeqUpTo + 1;
  assert.ok(next > 1, 'the new buffer numbers its events above the lost one');
  const atNext = await Subscription.open(gateway.port, `cursor=${next}`, { path: SUBSCRIBE_EVENTS });
  const pastNext = await Subscription.open(gateway.port, `cursor=${next + 5}`, { path: SUBSCRIBE_EVENTS });

  const up = new Upstream(relay, () => gateway.port);
  await relay.waitForConnections(1);
  up.create(ALICE, POST);
  await up.settle();
  const isCommit = (text: string) => JSON.parse(text).payload.$type?.endsWith('#commit');
  await waitUntil(() => atNext.texts.some(isCommit) && pastNext.texts.some(isCommit), "the new buffer's event, on both");

  const first = JSON.parse(atNext.texts[0]!);
  assert.ok(isCommit(atNext.texts[0]!), `cursor ${next}, the next seq: its event first, no notice: ${atNext.texts[0]!.slice(0, 200)}`);
  assert.equal(first.payload.seq, next, 'the event is the seq asked for');
  const notice = JSON.parse(pastNext.texts[0]!).payload;
  assert.equal(notice.name, 'FutureCursor', `cursor ${next + 5}: ${pastNext.texts[0]!.slice(0, 200)}`);
  assert.match(notice.message, new RegExp(`beyond the next seq \\(${next}\\)`));
});
