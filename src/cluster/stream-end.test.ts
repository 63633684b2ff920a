import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { pino } from 'pino';
import { waitUntil } from '../../test/support/poll.ts';
import { StreamEnd } from './stream-end.ts';

/** A stream whose info requests are counted, answering its last seq or failing (NATS unreachable). */
function fakeStream(lastSeq: number) {
  const stream = {
    requests: 0,
    failing: false,
    jsm: {
      streams: {
        info: async () => {
          stream.requests++;
          if (stream.failing) throw new Error('no responders');
          return { state: { last_seq: lastSeq } };
        },
      },
    },
    streamName: 'contrail-events',
  };
  return stream;
}

/** A follower that has applied through `applied` and applies nothing more unless told. */
function fakeFollower(applied: number) {
  const waiting: Array<{ seq: number; resolve: () => void }> = [];
  return {
    waitApplied: (seq: number) => (seq <= applied ? Promise.resolve() : new Promise<void>((resolve) => waiting.push({ seq, resolve }))),
    apply(seq: number) {
      applied = seq;
      for (const waiter of waiting.splice(0)) {
        if (waiter.seq <= seq) waiter.resolve();
        else waiting.push(waiter);
      }
    },
  };
}

const logger = pino({ level: 'silent' });
const refTimers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
const settled = (promise: Promise<void>) => Promise.race([promise.then(() => true), sleep(50).then(() => false)]);

test('one stream-info request answers every caller that arrived before it was sent, once the buffer holds its last seq', async () => {
  const stream = fakeStream(7);
  const follower = fakeFollower(5);
  const end = new StreamEnd(stream as never, follower, logger);
  const callers = [end.applied(), end.applied(), end.applied()]; // the first is sent at once; the others wait for the next
  assert.equal(await settled(callers[0]!), false, 'the buffer holds seq 5 of 7');
  follower.apply(7);
  await Promise.all(callers);
  assert.equal(stream.requests, 2);
});

test('while NATS cannot answer, it asks again only while a caller still wants the answer, on a timer that never holds the process', async () => {
  const stream = fakeStream(7);
  stream.failing = true;
  const end = new StreamEnd(stream as never, fakeFollower(7), logger);
  const timersBefore = refTimers();
  let wanted = true;
  void end.applied(() => wanted);
  await waitUntil(() => stream.requests >= 2, 'a request again after the failure');
  assert.equal(refTimers(), timersBefore, 'the retry timer is unref\'d');
  wanted = false; // the client left
  await sleep(1_200);
  const requests = stream.requests;
  await sleep(1_500);
  assert.equal(stream.requests, requests, 'no request for a caller that left');
  // A later caller is asked for again.
  stream.failing = false;
  await end.applied();
  assert.equal(stream.requests, requests + 1);
});

test('stop() ends the asking, lets waiting callers go and takes no more', async () => {
  const stream = fakeStream(7);
  stream.failing = true;
  const end = new StreamEnd(stream as never, fakeFollower(5), logger);
  const waiting = end.applied();
  await sleep(100);
  end.stop();
  const requests = stream.requests;
  const later = end.applied();
  await sleep(1_500);
  assert.equal(stream.requests, requests, 'no request after stop');
  assert.equal(await settled(waiting), false);
  assert.equal(await settled(later), false);
});
