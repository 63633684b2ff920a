/**
 * The zstd level of compressed subscribers' frames (README "Compression and dictionary"): an
 * event a compressed client replays is compressed at the replay level (--zstd-replay-level, 1 by
 * default), a live event at level 3, once, its frame shared by every compressed subscriber. Each
 * frame is checked against zstd's own frame of the event at that level with the dictionary (the
 * same bytes), and decoded with the dictionary a client holds: contrail's, and Jetstream v1's as
 * read from ../shared. Replays are read from the hot log on the main thread, from LMDB on a replay
 * worker, and from LMDB on the main thread.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import binding from 'zstd-napi/binding.js';
import { DEFAULT_DICTIONARY, type GatewayConfig } from '../src/config.ts';
import { V1_DICTIONARY, v1DictionarySkipReason } from './support/fixtures.ts';
import { Subscription, readWholeStream, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

/** zstd's frame of `json` at `level` with `dictionary`, as a Jetstream client expects it: the dictionary's ID in the header, the content size, no checksum. */
function zstdFrame(json: Buffer, dictionary: Buffer, level: number): Buffer {
  const context = new binding.CCtx();
  context.setParameter(binding.CParameter.compressionLevel, level);
  context.setParameter(binding.CParameter.dictIDFlag, 1);
  context.setParameter(binding.CParameter.contentSizeFlag, 1);
  context.setParameter(binding.CParameter.checksumFlag, 0);
  context.loadDictionary(dictionary);
  const frame = Buffer.alloc(binding.compressBound(json.length));
  return frame.subarray(0, context.compress2(frame, json));
}

function decompressAll(messages: Subscription['messages'], dictionary: Buffer): string[] {
  const context = new binding.DCtx();
  context.loadDictionary(dictionary);
  return messages.map((m) => {
    assert.equal(m.binary, true, 'a compressed subscriber gets binary frames');
    const json = Buffer.alloc(binding.getFrameContentSize(m.data)!);
    return json.subarray(0, context.decompress(json, m.data)).toString('utf8');
  });
}

/** Asserts each message is zstd's frame of the matching JSON at `level`; returns how many differ from level 3's. */
function assertFramesAt(messages: Subscription['messages'], texts: string[], dictionary: Buffer, level: number, what: string): number {
  assert.equal(messages.length, texts.length, `${what}: every event`);
  assert.deepEqual(decompressAll(messages, dictionary), texts, `${what}: each frame decodes with the dictionary to the event's exact JSON`);
  let notLevel3 = 0;
  messages.forEach((m, i) => {
    const json = Buffer.from(texts[i]!);
    assert.ok(m.data.equals(zstdFrame(json, dictionary, level)), `${what}: event ${i}'s frame is zstd's at level ${level}`);
    if (!m.data.equals(zstdFrame(json, dictionary, 3))) notLevel3++;
  });
  return notLevel3;
}

const WHERE: Array<{ name: string; config: Partial<GatewayConfig> }> = [
  { name: 'from the hot log', config: {} },
  { name: 'from LMDB on a replay worker', config: { hotCacheBytes: 4096, replayWorkers: 1 } },
  { name: 'from LMDB on the main thread', config: { hotCacheBytes: 4096, replayWorkers: 0 } },
];

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`zstd levels over ${transport}`, { skip }, () => {
    for (const where of WHERE) {
      test(`replayed ${where.name}, an event's frame is made at level 1; a live event's at level 3, shared by every compressed subscriber`, () =>
        withGateway({ transport, ...where.config }, {}, async ({ gateway, up }) => {
          const dictionary = readFileSync(DEFAULT_DICTIONARY);
          up.synthetic(300, 5);
          await up.settle();
          // No compressed subscriber was live for these events: none of them has a frame yet.
          const stored = (await readWholeStream(gateway.port)).map((e) => e.raw);
          const replaying = await Subscription.open(gateway.port, 'cursor=0&compress=true');
          await replaying.waitForCount(stored.length);
          const notLevel3 = assertFramesAt(replaying.messages, stored, dictionary, 1, 'replayed');
          assert.ok(notLevel3 > stored.length / 2, `most level-1 frames differ from level 3's (${notLevel3} of ${stored.length} do)`);

          const live = await Subscription.open(gateway.port, 'compress=true');
          const plain = await Subscription.open(gateway.port, '');
          up.synthetic(100, 6);
          const { newestTimeUs } = await up.settle();
          await plain.waitForTime(newestTimeUs!);
          await live.waitForCount(plain.messages.length);
          await replaying.waitForCount(stored.length + plain.messages.length);
          assertFramesAt(live.messages, plain.texts, dictionary, 3, 'live');
          const afterReplay = replaying.messages.slice(stored.length);
          assert.ok(
            afterReplay.every((m, i) => m.data.equals(live.messages[i]!.data)),
            'the replayed subscriber, live now, gets the live frames: the same bytes',
          );
        }));
    }

    test('--zstd-replay-level -5: replayed frames are zstd\'s at level -5; live ones stay at level 3', () =>
      withGateway({ transport, zstdReplayLevel: -5 }, {}, async ({ gateway, up }) => {
        const dictionary = readFileSync(DEFAULT_DICTIONARY);
        up.synthetic(200, 7);
        await up.settle();
        const stored = (await readWholeStream(gateway.port)).map((e) => e.raw);
        const replaying = await Subscription.open(gateway.port, 'cursor=0&compress=true');
        await replaying.waitForCount(stored.length);
        assertFramesAt(replaying.messages, stored, dictionary, -5, 'replayed at -5');
        const live = await Subscription.open(gateway.port, 'compress=true');
        const plain = await Subscription.open(gateway.port, '');
        up.synthetic(50, 8);
        const { newestTimeUs } = await up.settle();
        await plain.waitForTime(newestTimeUs!);
        await live.waitForCount(plain.messages.length);
        assertFramesAt(live.messages, plain.texts, dictionary, 3, 'live');
      }));

    const v1Missing = v1DictionarySkipReason();
    test("with Jetstream v1's dictionary, replayed frames are level 1's and decode in a client that embeds it", { skip: v1Missing }, () =>
      withGateway({ transport, zstdDictionary: V1_DICTIONARY, hotCacheBytes: 4096 }, {}, async ({ gateway, up }) => {
        const v1 = readFileSync(V1_DICTIONARY); // read from ../shared, not from the server
        up.synthetic(200, 9);
        await up.settle();
        const stored = (await readWholeStream(gateway.port)).map((e) => e.raw);
        const replaying = await Subscription.open(gateway.port, 'cursor=0', { headers: { 'Socket-Encoding': 'zstd' } });
        await replaying.waitForCount(stored.length);
        for (const m of replaying.messages) assert.equal(binding.getDictIDFromFrame(m.data), binding.getDictIDFromDict(v1));
        assertFramesAt(replaying.messages, stored, v1, 1, 'replayed with v1');
      }));
  });
}
