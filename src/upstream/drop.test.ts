import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { DropReporter } from './drop.ts';

function reporter() {
  const registry = new Registry();
  const counter = new Counter({ name: 'drops_total', help: 'drops', labelNames: ['reason'], registers: [registry] });
  const lines: Array<Record<string, unknown>> = [];
  let nowMs = 0;
  const drops = new DropReporter(counter, { warn: (fields: object) => void lines.push({ ...fields }) }, { intervalMs: 1_000, nowMs: () => nowMs });
  const counted = async (reason: string) => (await counter.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  return { drops, lines, counted, advance: (ms: number) => (nowMs += ms) };
}

test('every drop is counted by reason; each reason is logged at most once per interval, then with how many were left out', async () => {
  const { drops, lines, counted, advance } = reporter();
  drops.report('bad_record', 'first', { seq: 1 });
  drops.report('bad_record', 'second', { seq: 2 });
  drops.report('cid_mismatch', 'another reason', { seq: 3 });
  drops.report('bad_record', 'third', { seq: 4 });
  assert.equal(await counted('bad_record'), 3);
  assert.equal(await counted('cid_mismatch'), 1);
  assert.deepEqual(lines, [
    { reason: 'bad_record', detail: 'first', suppressedSinceLastLog: 0, seq: 1 },
    { reason: 'cid_mismatch', detail: 'another reason', suppressedSinceLastLog: 0, seq: 3 },
  ]);
  advance(999);
  drops.report('bad_record', 'still within the interval', { seq: 5 });
  assert.equal(lines.length, 2);
  advance(1);
  drops.report('bad_record', 'after the interval', { seq: 6 });
  assert.deepEqual(lines[2], { reason: 'bad_record', detail: 'after the interval', suppressedSinceLastLog: 3, seq: 6 });
  assert.equal(await counted('bad_record'), 5);
});
