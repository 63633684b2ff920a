import { EventStore } from '../src/store/index.ts';
process.on('SIGXFSZ', () => {});
const store = new EventStore({ dataDir: process.argv[2], hotLogBytes: 0, blockEvents: 50, fsync: false });
let committed = 0;
for (let i = 0; i < 100000; i++) {
  const entries = Array.from({ length: 100 }, (_, j) => { const t = 1_000_000 + (i * 100 + j) * 3; return { timeUs: t, did: 'did:plc:aaaa', kind: 'commit' as const, collection: 'app.bsky.feed.like', json: Buffer.from(JSON.stringify({ t, r: Math.random().toString(36).repeat(20) })) }; });
  try { await store.commit({ entries, revs: new Map() }); committed += 100; } catch (err) { console.log(JSON.stringify({ committed, error: (err as Error).message })); break; }
}
await store.close().catch((e) => console.log('close', e.message));
