/**
 * Names every op by what it is — did, collection/rkey, operation, cid (or the event kind and its
 * upstream seq) — so a test can check that a buffer holds exactly the upstream's ops, once each,
 * in order, whatever time_us they were given.
 */
import assert from 'node:assert/strict';
import { decodeFrame, parseMessage } from '../../src/upstream/index.ts';

/** Each op of the upstream frames, in order. */
export function upstreamOpIds(frames: ReadonlyArray<{ seq: number; bytes: Uint8Array }>): Array<{ seq: number; id: string }> {
  const out: Array<{ seq: number; id: string }> = [];
  for (const frame of frames) {
    const message = parseMessage(decodeFrame(frame.bytes, 5_000_000));
    switch (message.type) {
      case 'commit':
        assert.equal(message.drops.length, 0);
        for (const op of message.ops) out.push({ seq: frame.seq, id: `${message.repo} ${op.collection}/${op.rkey} ${op.action} ${op.cid ?? '-'}` });
        break;
      case 'identity':
      case 'account':
        out.push({ seq: frame.seq, id: `${message.did} ${message.type} ${message.seq}` });
        break;
      default:
        throw new Error(`unexpected ${message.type} frame in the synthetic stream`);
    }
  }
  return out;
}

/** The same name for a Jetstream event as upstreamOpIds gives its op. */
export function eventOpId(event: Record<string, any>): string {
  return event.kind === 'commit'
    ? `${event.did} ${event.commit.collection}/${event.commit.rkey} ${event.commit.operation} ${event.commit.cid ?? '-'}`
    : `${event.did} ${event.kind} ${event[event.kind].seq}`;
}

/** A short account of where two op lists first differ, instead of a 5,000-line diff. */
export function firstDifference(stored: string[], expected: string[]): string {
  const seen = new Map<string, number>();
  const duplicates = stored.filter((id) => seen.set(id, (seen.get(id) ?? 0) + 1).get(id)! > 1);
  const storedSet = new Set(stored);
  const missing = expected.filter((id) => !storedSet.has(id));
  let i = 0;
  while (i < stored.length && i < expected.length && stored[i] === expected[i]) i++;
  return [
    `stored ${stored.length} events, upstream has ${expected.length} ops; ${duplicates.length} duplicated, ${missing.length} missing`,
    `first difference at #${i}: stored ${JSON.stringify(stored[i])}, expected ${JSON.stringify(expected[i])}`,
    ...(duplicates.length ? [`e.g. duplicated: ${duplicates.slice(0, 3).join(' | ')}`] : []),
    ...(missing.length ? [`e.g. missing: ${missing.slice(0, 3).join(' | ')}`] : []),
  ].join('\n');
}

/** Fails with firstDifference's account unless `stored` is exactly `expected`. */
export function assertSameOps(stored: string[], expected: string[]): void {
  if (JSON.stringify(stored) !== JSON.stringify(expected)) assert.fail(firstDifference(stored, expected));
}
