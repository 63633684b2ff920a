/**
 * One subscriber's backfill of one repo, over a real buffer, whose snapshot the test hands over:
 * what its catch-up then reads from the buffer (subscriber-backfill.ts #catchUp) and sends.
 */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createBackfillMetrics, SubscriberBackfill, type BackfillContext } from '../../src/backfill/index.ts';
import type { EventStore } from '../../src/store/index.ts';

/** What the tests read of a message the backfill sends: an event, or a repo's `backfill` status. */
export interface Sent {
  kind: string;
  time_us?: number;
  backfill?: { status: string; reason?: string; message?: string };
}

/**
 * A subscriber at the buffer's tip that asked at its start for `repo`'s backfill. `catchUp(rev)`
 * hands over an empty snapshot at `rev`, taken at the tip, and resolves with the messages the
 * backfill then has to send, parsed; an unhandled rejection (which would end the process) fails it.
 */
export function repoBackfill(store: EventStore, repo: string, defer: (step: () => unknown) => void) {
  let snapshotArrives!: (snapshot: unknown) => void;
  let output!: () => void;
  const outputCame = new Promise<void>((resolve) => (output = resolve));
  const context = {
    snapshots: { get: () => new Promise((resolve) => (snapshotArrives = resolve)) },
    store,
    metrics: createBackfillMetrics(new Registry()),
    logger: pino({ level: 'silent' }),
  } as unknown as BackfillContext;
  const backfill = new SubscriberBackfill(context, () => true, () => output(), () => store.hotLog.newest, 1);
  backfill.request([repo], 0);

  const catchUp = async (rev: string): Promise<Sent[]> => {
    const unhandled = new Promise<never>((_, reject) => {
      const listener = (err: unknown) => reject(new Error(`an unhandled rejection (the process would end): ${(err as Error).message}`));
      process.once('unhandledRejection', listener);
      defer(() => process.off('unhandledRejection', listener));
    });
    snapshotArrives({ did: repo, rev, commitCid: 'bafysnapshot', records: [], skipped: 0, bytes: 0, since: store.hotLog.newest });
    await Promise.race([outputCame, unhandled]);
    return backfill.peek(store.hotLog.newest, 1_000).map((item) => JSON.parse((Buffer.isBuffer(item) ? item : item.json).toString()) as Sent);
  };
  return { backfill, catchUp };
}
