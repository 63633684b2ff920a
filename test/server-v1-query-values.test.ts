/**
 * Jetstream v1 reads its /subscribe parameters with Go: `maxMessageSizeBytes` with strconv.Atoi
 * (an optional sign and ASCII decimal digits; anything else, or a value out of int64's range, is
 * 0 = no limit), `cursor` with strconv.ParseInt (the same grammar; anything else, out of range
 * included, is a 400), and every scalar from the first value of its key. A v1 client gets the
 * same answer here, on both transports: `0x10`, `1e3`, ` 400` or `400.0` are no limit (contrail
 * read them as numbers), `+400` is 400, `cursor=+T` is T (contrail refused it) and a cursor past
 * int64 is a 400 (contrail took it as live). Where v1 answers badly — a limit of 2^32 or more wraps
 * to a small one in its uint32 — contrail takes it as no limit (README Compatibility notes).
 * The same reading holds for an options_update's maxMessageSizeBytes, a JSON number in v1: one
 * that is not an integer (a string, a bool, 1.5, past int64) closes the connection with a reason.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { Subscription, settleSubscribers, startGatewayWithStream, upgradeRequest, type StoredEvent } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

/** A size limit with events on both sides of it: the median event's length. */
function medianSize(stream: StoredEvent[]): number {
  const sizes = stream.map((e) => Buffer.byteLength(e.raw)).sort((a, b) => a - b);
  return sizes[Math.floor(sizes.length / 2)]!;
}

function within(stream: StoredEvent[], limit: number): string[] {
  return stream.filter((e) => limit === 0 || Buffer.byteLength(e.raw) <= limit).map((e) => e.raw);
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`/subscribe reads v1's query values as Jetstream v1 does, over ${transport}`, { skip }, () => {
    test('maxMessageSizeBytes: Go integer syntax, first value, no limit for junk, and none for 2^32 or more', async (t) => {
      const { h, stream } = await startGatewayWithStream(cleanup(t), transport);
      const limit = medianSize(stream);
      const cases: Array<[value: string, expectedLimit: number]> = [
        [`${limit}`, limit],
        [`%2B${limit}`, limit], // +L: Atoi takes a sign
        [`00${limit}`, limit],
        [`0x${limit.toString(16)}`, 0],
        [`${limit}e0`, 0],
        [`${limit}.0`, 0],
        [`%20${limit}`, 0],
        [`${limit}%20`, 0],
        [`${limit}_0`, 0],
        [`-${limit}`, 0],
        [`${2 ** 32 + limit}`, 0], // v1 wraps this to L in a uint32; contrail: no limit
        ['9223372036854775808', 0], // past int64: Atoi fails, no limit
        [`${limit}&maxMessageSizeBytes=junk`, limit], // the first value counts
        [`junk&maxMessageSizeBytes=${limit}`, 0],
      ];
      const subscriptions = await Promise.all(cases.map(([value]) => Subscription.open(h.gateway.port, `cursor=0&maxMessageSizeBytes=${value}`)));
      await settleSubscribers(h.gateway, subscriptions);
      for (const [i, [value, expectedLimit]] of cases.entries()) {
        const expected = within(stream, expectedLimit);
        assert.ok(expectedLimit === 0 || expected.length < stream.length, 'the limit skips some events');
        assert.equal(subscriptions[i]!.texts.length, expected.length, `maxMessageSizeBytes=${value} reads as ${expectedLimit || 'no limit'}`);
        assert.deepEqual(subscriptions[i]!.texts, expected, `maxMessageSizeBytes=${value}`);
      }
    });

    test('cursor: Go integer syntax with a sign, int64 range, first value', async (t) => {
      const { h, stream } = await startGatewayWithStream(cleanup(t), transport);
      const k = Math.floor(stream.length / 2);
      const at = stream[k]!.timeUs;
      const replays: Array<[query: string, from: number]> = [
        [`cursor=%2B${at}`, k],
        [`cursor=00${at}`, k],
        [`cursor=${at}&cursor=junk`, k],
        ['cursor=-9223372036854775808', 0],
      ];
      const subscriptions = await Promise.all(replays.map(([query]) => Subscription.open(h.gateway.port, query)));
      const live = await Subscription.open(h.gateway.port, 'cursor=9223372036854775807');
      await settleSubscribers(h.gateway, [...subscriptions, live]);
      for (const [i, [query, from]] of replays.entries()) {
        assert.deepEqual(subscriptions[i]!.texts, stream.slice(from).map((e) => e.raw), query);
      }
      assert.equal(live.messages.length, 0, 'the largest int64 is a future cursor: live');
      for (const value of ['9223372036854775808', '-9223372036854775809', '99999999999999999999', `%20${at}`, `${at}%20`, `${at}.0`, `0x${at.toString(16)}`]) {
        const reply = await upgradeRequest(h.gateway.port, `/subscribe?cursor=${value}`);
        assert.equal(reply.status, 400, `cursor=${value} → 400 (got ${reply.status} ${reply.body})`);
        assert.match(reply.body.toString(), /^cursor: /);
      }
    });

    test('compress and requireHello: exactly true, from the first value', async (t) => {
      const { h, stream } = await startGatewayWithStream(cleanup(t), transport);
      const compressed = await Subscription.open(h.gateway.port, 'cursor=0&compress=true&compress=false');
      const plain = await Subscription.open(h.gateway.port, 'cursor=0&compress=false&compress=true');
      const noHello = await Subscription.open(h.gateway.port, 'cursor=0&requireHello=false&requireHello=true');
      const hello = await Subscription.open(h.gateway.port, 'cursor=0&requireHello=true&requireHello=false');
      await settleSubscribers(h.gateway, [compressed, plain, noHello]);
      await hello.roundTrip();
      assert.equal(compressed.messages.length, stream.length);
      assert.ok(compressed.messages.every((m) => m.binary), 'compress=true first: zstd frames');
      assert.deepEqual(plain.texts, stream.map((e) => e.raw), 'compress=false first: JSON');
      assert.deepEqual(noHello.texts, stream.map((e) => e.raw), 'requireHello=false first: no hello needed');
      assert.equal(hello.messages.length, 0, 'requireHello=true first: nothing before the hello');
    });

    test("options_update's maxMessageSizeBytes: an integer, as v1's Go int; anything else closes with a reason", async (t) => {
      const { h, stream } = await startGatewayWithStream(cleanup(t), transport);
      const limit = medianSize(stream);
      const taken: Array<[value: unknown, expectedLimit: number]> = [
        [limit, limit],
        [-limit, 0],
        [0, 0],
        [2 ** 32 + limit, 0], // v1 wraps this to L; contrail: no limit
      ];
      const subscriptions = await Promise.all(taken.map(() => Subscription.open(h.gateway.port, 'cursor=0&requireHello=true')));
      for (const [i, [value]] of taken.entries()) subscriptions[i]!.send(JSON.stringify({ type: 'options_update', payload: { maxMessageSizeBytes: value } }));
      // Once the hello is handled (the round trip), each replays from its cursor.
      await Promise.all(subscriptions.map((s) => s.roundTrip()));
      await settleSubscribers(h.gateway, subscriptions);
      for (const [i, [value, expectedLimit]] of taken.entries()) {
        assert.equal(subscriptions[i]!.texts.length, within(stream, expectedLimit).length, `maxMessageSizeBytes: ${value} reads as ${expectedLimit || 'no limit'}`);
        assert.deepEqual(subscriptions[i]!.texts, within(stream, expectedLimit), `maxMessageSizeBytes: ${value}`);
      }
      for (const value of [`"${limit}"`, '"junk"', 'true', '1.5', '[400]', '{}', '1e19']) {
        const s = await Subscription.open(h.gateway.port, 'requireHello=true');
        s.send(`{"type":"options_update","payload":{"maxMessageSizeBytes":${value}}}`);
        const close = await s.waitClosed();
        assert.equal(close.code, 1008, `maxMessageSizeBytes: ${value} closes 1008 (got ${close.code} ${close.reason})`);
        assert.match(close.reason, /maxMessageSizeBytes/, `the reason names the key: ${close.reason}`);
        assert.equal(s.messages.length, 0);
      }
    });
  });
}
