/**
 * `contrail inspect --data-dir DIR`, run as the real CLI in a child process, on buffers written
 * by the real EventStore: span, count, sizes, saved cursor; exit code 2 when there is no buffer.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Entry } from '../src/events/entry.ts';
import { EventStore } from '../src/store/event-store.ts';
import { PROJECT_ROOT } from './support/contrail-process.ts';
import { tempDir } from './support/gateway.ts';

const RELAY = 'wss://relay.example.test/xrpc/com.atproto.sync.subscribeRepos';

function inspect(dataDir: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // The built CLI, as the bin runs it (`npm test` builds it first).
    execFile(process.execPath, ['dist/cli.js', 'inspect', '--data-dir', dataDir], { cwd: PROJECT_ROOT }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** The value column of the line whose label is `label`. */
function field(stdout: string, label: string): string {
  const line = stdout.split('\n').find((l) => l.startsWith(`${label} `));
  assert.ok(line, `a "${label}" line in:\n${stdout}`);
  return line.slice(label.length).trim();
}

function entry(timeUs: number, i: number): Entry {
  const did = `did:plc:${String(i % 50).padStart(24, 'z')}`;
  const json = `{"did":"${did}","time_us":${timeUs},"kind":"commit","commit":{"rev":"3l${i}","operation":"create","collection":"app.bsky.feed.like","rkey":"k${i}","record":{"$type":"app.bsky.feed.like","createdAt":"2026-03-01T12:00:00.000Z"},"cid":"bafyrei${i}"}}`;
  return { timeUs, did, kind: 'commit', collection: 'app.bsky.feed.like', json: Buffer.from(json) };
}

test('prints the span, count, sizes, saved cursor and retention floor of a buffer', async (t) => {
  const dir = tempDir('contrail-inspect-');
  t.after(() => dir.remove());
  const first = Date.UTC(2026, 2, 1, 12, 0, 0) * 1000; // 2026-03-01T12:00:00.000Z
  const events = Array.from({ length: 1_234 + 100 }, (_, i) => entry(first + i * 1_000_000, i));
  // Blocks of 100, so retention can remove exactly the oldest 100 (a block).
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100 });
  for (let i = 0; i < events.length; i += 200) {
    const batch = events.slice(i, i + 200);
    await store.commit({ entries: batch, cursor: { url: RELAY, seq: 987_654_000 + i + batch.length }, revs: new Map() });
  }
  await store.trimBefore(events[100]!.timeUs, 1_000); // retention removed the oldest 100
  await store.close(); // which seals a block still being sealed: the span is the closed buffer's
  const closed = new EventStore({ dataDir: dir.path, hotLogBytes: 0, readOnly: true });
  const span = closed.span();
  await closed.close();

  const { code, stdout, stderr } = await inspect(dir.path);
  assert.equal(code, 0, stderr);
  const oldest = events[100]!.timeUs;
  const newest = events.at(-1)!.timeUs;
  assert.equal(field(stdout, 'data dir'), dir.path);
  assert.equal(field(stdout, 'oldest event'), `${new Date(oldest / 1000).toISOString()}  (time_us ${oldest})`);
  assert.equal(field(stdout, 'newest event'), `${new Date(newest / 1000).toISOString()}  (time_us ${newest})`);
  assert.equal(field(stdout, 'oldest event').slice(0, 24), '2026-03-01T12:01:40.000Z');
  assert.equal(field(stdout, 'events'), '1,234');
  assert.match(field(stdout, 'event pages'), new RegExp(`\\(${span.bytes} bytes\\)$`));
  assert.ok(span.bytes > 20_000);
  const fileBytes = statSync(join(dir.path, 'data.mdb')).size;
  assert.match(field(stdout, 'file on disk'), new RegExp(`^[\\d.]+ (KiB|MiB) \\(${fileBytes} bytes\\)$`));
  assert.equal(field(stdout, 'last time_us'), String(newest));
  assert.equal(field(stdout, 'upstream cursor'), `seq ${987_654_000 + events.length} from ${RELAY}`);
  assert.equal(field(stdout, 'trimmed up to'), `${new Date(events[99]!.timeUs / 1000).toISOString()}  (time_us ${events[99]!.timeUs})`);
});

test('reads a buffer while a gateway has it open for writing', async (t) => {
  const dir = tempDir('contrail-inspect-');
  t.after(() => dir.remove());
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 1 << 20 });
  t.after(() => store.close());
  const base = Date.UTC(2026, 5, 1) * 1000;
  await store.commit({ entries: [entry(base, 1), entry(base + 5, 2)], cursor: { url: RELAY, seq: 42 }, revs: new Map() });
  const before = await inspect(dir.path);
  assert.equal(before.code, 0, before.stderr);
  assert.equal(field(before.stdout, 'events'), '2');
  assert.equal(field(before.stdout, 'upstream cursor'), `seq 42 from ${RELAY}`);
  // The writer carries on: inspecting did not lock it out.
  await store.commit({ entries: [entry(base + 9, 3)], cursor: { url: RELAY, seq: 43 }, revs: new Map() });
  assert.equal(store.span().eventCount, 3);
});

test('an empty buffer says that nothing is stored and no cursor is saved', async (t) => {
  const dir = tempDir('contrail-inspect-');
  t.after(() => dir.remove());
  await new EventStore({ dataDir: dir.path, hotLogBytes: 0 }).close();
  const { code, stdout, stderr } = await inspect(dir.path);
  assert.equal(code, 0, stderr);
  assert.equal(field(stdout, 'oldest event'), '-');
  assert.equal(field(stdout, 'newest event'), '-');
  assert.equal(field(stdout, 'events'), '0');
  assert.equal(field(stdout, 'upstream cursor'), '- (none saved: starts live)');
  assert.equal(field(stdout, 'trimmed up to'), '- (nothing trimmed yet)');
});

test('a folder without a buffer exits 2 with a clear message', async (t) => {
  const dir = tempDir('contrail-inspect-');
  t.after(() => dir.remove());
  const { code, stdout, stderr } = await inspect(dir.path);
  assert.equal(code, 2);
  assert.equal(stdout, '');
  assert.equal(stderr, `contrail: no event buffer in ${dir.path} (expected ${join(dir.path, 'data.mdb')})\n`);
  // Inspecting did not create a buffer.
  assert.throws(() => statSync(join(dir.path, 'data.mdb')), /ENOENT/);
});
