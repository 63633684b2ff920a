/**
 * Child process for the full-disk test: commits batches of incompressible events to the store in
 * argv[2] until a commit fails (its parent limits the file size with `ulimit -f`), then prints
 * how many events were committed and the error, as one JSON line.
 */
import { EventStore } from '../../src/store/index.ts';
import { mulberry32 } from './synthetic.ts';

process.on('SIGXFSZ', () => {}); // the write fails with EFBIG instead of killing the process
const store = new EventStore({ dataDir: process.argv[2] ?? '', hotLogBytes: 0, blockEvents: 200, fsync: false });
const rnd = mulberry32(3);
let committed = 0;
let error = '';
for (let batch = 0; !error && batch < 10_000; batch++) {
  const entries = Array.from({ length: 100 }, (_, i) => {
    const timeUs = 1_000_000 + (batch * 100 + i) * 3;
    const noise = Array.from({ length: 20 }, () => rnd().toString(36).slice(2)).join('');
    return { timeUs, did: 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa', kind: 'commit' as const, collection: 'app.bsky.feed.like', json: Buffer.from(`{"time_us":${timeUs},"noise":"${noise}"}`) };
  });
  try {
    await store.commit({ entries, revs: new Map() });
    committed += entries.length;
  } catch (err) {
    error = (err as Error).message;
  }
}
process.stdout.write(JSON.stringify({ committed, lastSeq: store.lastSeq, error }) + '\n');
process.exit(0);
