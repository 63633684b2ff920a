/**
 * What one backfill fetch holds in memory. The README bounds it by --backfill-max-repo-bytes ("a
 * fetch holds up to this much in memory"; backfill memory "at most --backfill-concurrency × this,
 * plus the cache"), and a repo export is written by its PDS, which anyone can run. Here a real
 * HTTP server on 127.0.0.1 serves a real repo export padded with many small blocks beside the
 * tree (valid CAR, every CID right, well under the byte limit): the heap the read keeps alive,
 * measured after full collections while the CAR streams in, must stay within that bound (with
 * room to spare: twice the limit), or the fetch must end with too_large.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { CarReader } from '@ipld/car';
import { BackfillFailure, readRepoCar, type FetchLimits } from '../src/backfill/index.ts';
import { fetchRepo } from '../src/backfill/repo-fetch.ts';
import { cborBlock, carOf, type Block } from './support/frames.ts';
import { localHttpServer } from './support/local-http.ts';

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

const DID = 'did:plc:53iucmf5ldftgqyf2ac7hmhd';
const MAX_REPO_BYTES = 4 * 1024 * 1024;
/** Small blocks (a CBOR integer each, ~40 bytes in the CAR): 2.5 MB of them, under the limit. */
const PADDING_BLOCKS = 60_000;

const reader = await CarReader.fromBytes(readFileSync(new URL('./fixtures/cars/repo-jetstream.car', import.meta.url)));
const [root] = await reader.getRoots();
const repoBlocks: Block[] = [];
for await (const block of reader.blocks()) repoBlocks.push(block);
const padding = Array.from({ length: PADDING_BLOCKS }, (_, i) => cborBlock(1_000_000 + i));
const car = Buffer.from(carOf([root!], [...repoBlocks, ...padding]));
padding.length = 0;

test('a repo export padded with small blocks: the fetch keeps no more than --backfill-max-repo-bytes alive (twice, at most)', async (t) => {
  assert.ok(car.length < MAX_REPO_BYTES, `the CAR (${car.length} bytes) is under the limit`);
  const { url } = await localHttpServer(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' });
    res.end(car);
  });
  const limits: FetchLimits = { maxBytes: MAX_REPO_BYTES, timeoutMs: 120_000, attempts: 1, backoffMs: 10, maxRetryAfterMs: 1_000, allowPrivateEndpoints: true };
  collectGarbage();
  const baseline = process.memoryUsage();
  let peak = 0;
  let chunks = 0;
  /** The body as fetchRepo hands it over, measuring what is alive every 8 chunks and when the read ends. */
  async function* measured(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
    const measure = () => {
      collectGarbage();
      const now = process.memoryUsage();
      peak = Math.max(peak, now.heapUsed + now.arrayBuffers - baseline.heapUsed - baseline.arrayBuffers);
    };
    try {
      for await (const chunk of body) {
        if (++chunks % 8 === 0) measure();
        yield chunk;
      }
    } finally {
      measure(); // also when the reader stops early (a failure)
    }
  }
  const outcome = await fetchRepo(url, DID, limits, (body) => readRepoCar(measured(body), DID, limits.maxBytes)).then(
    (snapshot) => `a snapshot of ${snapshot.records.length} records`,
    (err: unknown) => {
      if (err instanceof BackfillFailure && err.reason === 'too_large') return 'too_large';
      throw err;
    },
  );
  t.diagnostic(`${outcome}; CAR ${car.length} bytes in ${chunks} chunks; at most ${peak} bytes alive`);
  assert.ok(
    peak <= 2 * MAX_REPO_BYTES,
    `reading a ${car.length}-byte CAR (${outcome}) kept ${(peak / 1e6).toFixed(0)} MB alive, over twice the ${MAX_REPO_BYTES}-byte limit`,
  );
});
