/**
 * A replay that reaches a block of the buffer damaged on disk ends with BufferDamaged; the cursor
 * past the lost events must reach the client in a form a program can read, not only inside the
 * message's prose: a `cursor` field in the error frame on every wire (v1 plain and zstd, v2, the
 * SSE close event, the NDJSON error line). Resuming with it gets every event after the block.
 * On both transports, against a buffer written and damaged here.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BLOCK, POST, blockStream, writeBuffer } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { damagePartition } from './support/damaged-block.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { HttpStream } from './support/http-stream.ts';
import { SUBSCRIBE_EVENTS, Subscription } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const NO_UPSTREAM = 'ws://127.0.0.1:9';

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`BufferDamaged says where to resume, over ${transport}`, { skip }, () => {
    test('the error frame of every wire carries the cursor past the damaged block, and resuming with it reads on to the end', { timeout: 120_000 }, async (t) => {
      const defer = cleanup(t);
      const dir = tempDir('contrail-damaged-resume-');
      defer(() => dir.remove());
      const dataDir = join(dir.path, 'data');
      const events = blockStream(3);
      await writeBuffer(dataDir, events);
      // The second block's posts cannot be read: a replay from before it stops at its first event.
      const end = events[2 * BLOCK - 1]!.timeUs;
      await damagePartition(dataDir, end, POST);
      const gateway = await startTestGateway(NO_UPSTREAM, dataDir, { transport });
      defer(() => gateway.stop());
      defer(() => Subscription.closeAll());
      defer(() => HttpStream.closeAll());
      const from = events[BLOCK - 3]!.timeUs;
      const after = events.filter((e) => e.timeUs > end).map((e) => e.timeUs);

      const errors: Array<[wire: string, error: Record<string, unknown>]> = [];
      for (const [wire, options, query] of [
        ['v1', {}, `cursor=${from}`],
        ['v1 zstd', {}, `cursor=${from}&compress=true`],
        ['v2', { path: SUBSCRIBE_EVENTS }, `cursor=${from}`],
      ] as const) {
        const client = await Subscription.open(gateway.port, query, options);
        await client.waitClosed();
        errors.push([wire, client.events.at(-1)!]);
      }
      for (const path of ['/stream', '/stream.ndjson'] as const) {
        const stream = await HttpStream.open(gateway.port, path, `cursor=${from}`);
        await stream.ended;
        errors.push([path, JSON.parse(stream.messages.at(-1)!.data)]);
      }
      for (const [wire, error] of errors) {
        assert.equal(error.error, 'BufferDamaged', `${wire}: ${JSON.stringify(error)}`);
        assert.equal(error.cursor, end + 1, `${wire}: the error names the cursor past the lost events: ${JSON.stringify(error)}`);
      }

      // Resuming with it: every event after the block, on v1 and on v2 (a timestamp cursor).
      const cursor = errors[0]![1].cursor as number;
      const v1 = await Subscription.open(gateway.port, `cursor=${cursor}`);
      await v1.waitForTime(after.at(-1)!);
      assert.deepEqual(v1.events.map((e) => e.time_us), after);
      const v2 = await Subscription.open(gateway.port, `cursor=${cursor}`, { path: SUBSCRIBE_EVENTS });
      await v2.waitForCount(after.length);
      assert.ok(v2.events.every((e) => e.$type === 'message' && e.payload.$type.endsWith('#commit')), 'v2: the events after the block, nothing else');
      assert.ok(v1.isOpen && v2.isOpen, 'no error after the block');
    });
  });
}
