/**
 * WorkerPool with real worker threads (small eval'd workers): requests answered, a worker that
 * dies rejects its pending requests and is started again, one that never started makes the pool
 * refuse every request, and close rejects what is pending, lets a worker still loading start first,
 * and holds the process open until its workers have exited.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { WorkerPool } from './worker-pool.ts';

/** Says it is ready, then answers each { id, value } with { id, doubled }; { id, exit } ends the thread first. */
const DOUBLER = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', ({ id, value, exit }) => (exit ? process.exit(3) : parentPort.postMessage({ id, doubled: value * 2 })));
parentPort.postMessage({ ready: true });
`;

type Message = { ready: true } | { id: number; doubled: number };

function doublerPool(code = DOUBLER) {
  const logs: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => logs.push((JSON.parse(line) as { msg: string }).msg) });
  let starts = 0;
  let readies = 0;
  const pool: WorkerPool<number, Message> = new WorkerPool<number, Message>({
    size: 1,
    name: 'test worker',
    fallback: { all: 'everything runs here', pending: 'its work runs here' },
    logger,
    start: () => {
      starts++;
      return new Worker(code, { eval: true });
    },
    slotExtra: () => ({}),
    onMessage: (slot, message) => {
      if ('ready' in message) {
        readies++;
        return;
      }
      pool.answered(slot, message.id)?.resolve(message.doubled);
    },
  });
  let nextId = 0;
  const ask = (request: { value?: number; exit?: true }) => {
    const slot = pool.slots[0]!;
    const worker = pool.workerOf(slot);
    const id = nextId++;
    return new Promise<number>((resolve, reject) => {
      if (slot.pending.size === 0) worker.ref();
      slot.pending.set(id, { resolve, reject });
      worker.postMessage({ id, ...request });
    });
  };
  return { pool, logs, ask, starts: () => starts, readies: () => readies };
}

test('requests are answered; the worker starts once, and holds the process open only while it has requests pending', async () => {
  const { pool, ask, starts } = doublerPool();
  await pool.ready();
  assert.deepEqual(await Promise.all([ask({ value: 1 }), ask({ value: 21 })]), [2, 42]);
  assert.equal(starts(), 1);
  assert.equal(pool.pending, 0);
  assert.equal(pool.refusal(), undefined);
  await pool.close();
});

test('a worker that dies rejects its pending requests, is logged, and is started again for the next', async () => {
  const { pool, logs, ask, starts } = doublerPool();
  await pool.ready();
  await assert.rejects(ask({ exit: true }), /the test worker exited with code 3/);
  assert.equal(pool.pending, 0);
  assert.deepEqual(logs, ['a test worker stopped; its work runs here, and it is started again']);
  assert.equal(await ask({ value: 5 }), 10);
  assert.equal(starts(), 2);
  await pool.close();
});

test('a worker that dies before it ever sent a message cannot start: every request is refused from then on, logged once', async () => {
  const { pool, logs, starts } = doublerPool('throw new Error("no such build")');
  await assert.rejects(pool.ready(), /no such build/);
  assert.match(String(pool.refusal()), /no such build/);
  assert.deepEqual(logs, ['a test worker could not start: everything runs here']);
  assert.equal(starts(), 1);
  assert.deepEqual(pool.threads(), []);
  await pool.close();
});

test('close rejects what is pending and refuses what comes after', async () => {
  const { pool, ask } = doublerPool(`require('node:worker_threads').parentPort.postMessage({ ready: true }); setInterval(() => {}, 1000);`);
  await pool.ready();
  const pending = ask({ value: 1 });
  await pool.close();
  await assert.rejects(pending, /exited/);
  assert.match(String(pool.refusal()), /the test workers are closed/);
});

/**
 * A worker terminated while it loads its modules can take the whole process down: a native addon
 * registering then (LMDB's, which both workers' modules load) met the termination and aborted the
 * process (FATAL ERROR: Error::ThrowAsJavaScriptException napi_throw). A gateway start that failed
 * at once (a port in use) closed the check workers it had just started so, and killed a CI test
 * process (gateway-failed-start-threads.test.ts, session 23). close() lets a loading worker finish
 * its start first. Here the worker's loading is a busy wait, which terminate() would cut short.
 */
test('close lets a worker still loading finish its start before it is stopped', async () => {
  const { pool, readies } = doublerPool(`
    const { parentPort } = require('node:worker_threads');
    const loaded = Date.now() + 300;
    while (Date.now() < loaded);
    parentPort.postMessage({ ready: true });
    setInterval(() => {}, 1000);
  `);
  pool.workerOf(pool.slots[0]!);
  await pool.close();
  assert.equal(readies(), 1, 'it said it was ready before it was stopped');
  assert.deepEqual(pool.threads(), []);
});

/**
 * A closing pool's worker holds the process open until it has exited. The answer to a request in
 * flight, handled before the exit, took the worker's hold away again (no request left pending),
 * and a process with nothing else to wait for ended inside close(): a test process so cancelled
 * every test after one whose replay worker had a read ahead in flight (seen in session 23's CI). In a
 * process of its own, which the answer reaches while close() waits, and nothing else holds open.
 */
test('close holds the process open until its workers have exited, though the answer to a request in flight comes first', () => {
  const program = `
    import { Worker } from 'node:worker_threads';
    import pino from 'pino';
    import { WorkerPool } from ${JSON.stringify(new URL('./worker-pool.ts', import.meta.url).href)};
    const pool = new WorkerPool({
      size: 1,
      name: 'test worker',
      fallback: { all: 'everything runs here', pending: 'its work runs here' },
      logger: pino({ level: 'silent' }),
      // A CommonJS worker: the --input-type=module of this program would make its code a module.
      start: () => new Worker(${JSON.stringify(DOUBLER)}, { eval: true, execArgv: [] }),
      slotExtra: () => ({}),
      onMessage: (slot, message) => { if (!('ready' in message)) pool.answered(slot, message.id)?.resolve(message.doubled); },
    });
    await pool.ready();
    const slot = pool.slots[0];
    const worker = pool.workerOf(slot);
    worker.ref();
    slot.pending.set(0, { resolve: (doubled) => console.log('answered', doubled), reject: () => console.log('rejected') });
    worker.postMessage({ id: 0, value: 21 });
    // This thread waits while the worker answers: the answer is handled after close() began.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
    await pool.close();
    console.log('closed');
  `;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', program], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(child.stderr, '');
  assert.deepEqual(child.stdout.trim().split('\n'), ['answered 42', 'closed'], 'the answer came while closing, and close() returned');
});
