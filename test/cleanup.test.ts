import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';

test('cleanup runs its steps last-registered first, every one though some throw, and then fails with their errors', async () => {
  let hook: (() => Promise<void>) | undefined;
  const defer = cleanup({ after: (fn) => void (hook = fn as () => Promise<void>) });
  const ran: string[] = [];
  defer(() => ran.push('stop NATS'));
  defer(() => {
    ran.push('remove the data dirs');
    throw new Error('ENOTEMPTY');
  });
  defer(async () => {
    ran.push('stop the leader');
    throw new Error('did not exit');
  });
  defer(() => ran.push('stop the returning node'));
  await assert.rejects(hook!(), (err: AggregateError) => err.errors.map((e: Error) => e.message).join() === 'did not exit,ENOTEMPTY');
  assert.deepEqual(ran, ['stop the returning node', 'stop the leader', 'remove the data dirs', 'stop NATS']);
});
