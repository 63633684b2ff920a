/**
 * bench/ingest: upstream frames → JSON events per second, one core, over a realistic mix
 * (test/support/synthetic.ts), beside two peers decoding the same frames in the same run:
 *   - @atproto/sync 0.1.40: Frame.fromBytes (the decoder its Firehose uses) + parseCommitUnauthenticated
 *     / parseAccount → event objects (no JSON);
 *   - @atcute/cbor + @atcute/car: a bare decode of header, body, CAR and record blocks (no JSON,
 *     no CID verification) — the fastest JS decoders known, a floor for any decoder.
 * contrail's figure includes CID verification and the final JSON bytes. A fourth row runs the
 * same frames through the whole ingest path as `contrail serve` does (decodeFrame, parseMessage,
 * the Ingester's group commits into an EventStore without fsync: the tail, zstd blocks with
 * contrail's dictionary, the per-DID index, the hot log), 64 frames per turn of the event loop
 * as a socket read hands them over, into a fresh buffer each run. Every row also gives events
 * per CPU-second of the process (all its threads), which other load on the machine distorts less.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAccount, parseCommitUnauthenticated } from '@atproto/sync';
import { Frame } from '@atproto/xrpc-server';
import { decode as atcuteDecode, decodeFirst as atcuteDecodeFirst, fromBytes } from '@atcute/cbor';
import { fromUint8Array } from '@atcute/car';
import { CursorClock } from '../src/events/clock.ts';
import { eventsOf } from '../test/support/events.ts';
import { preparedFrames } from './frames.ts';
import { ingestIntoFreshBuffer } from './ingest-path.ts';
import { median, printTable, timeEvents, type Row, type TimedRun } from './table.ts';

const FRAMES = 20_000;
const RUNS = 5;
const DICTIONARY = fileURLToPath(new URL('../dictionaries/contrail-v1.zstd-dict', import.meta.url));

type Decoder = (frames: Uint8Array[]) => Promise<number> | number;

const contrail: Decoder = (frames) => {
  const clock = new CursorClock();
  let events = 0;
  for (const bytes of frames) events += eventsOf(bytes, clock).length;
  return events;
};

const atprotoSync: Decoder = async (frames) => {
  let events = 0;
  for (const bytes of frames) {
    const frame = Frame.fromBytes(bytes) as { header: { t?: string }; body: any };
    switch (frame.header.t) {
      case '#commit':
        events += (await parseCommitUnauthenticated(frame.body)).length;
        break;
      case '#account':
        // parseAccount returns nothing for statuses it does not know (desynchronized, throttled); count the decode.
        parseAccount(frame.body);
        events++;
        break;
      case '#identity':
        // parseIdentity resolves the DID over the network; count the decoded frame instead.
        events += frame.body.did ? 1 : 0;
        break;
      default: // #sync and unknown types carry no events
    }
  }
  return events;
};

const atcute: Decoder = (frames) => {
  let events = 0;
  for (const bytes of frames) {
    const [header, rest] = atcuteDecodeFirst(bytes) as [{ t?: string }, Uint8Array];
    const body = atcuteDecode(rest) as any;
    if (header.t !== '#commit') {
      events++;
      continue;
    }
    const blocks = [...fromUint8Array(fromBytes(body.blocks))];
    for (const op of body.ops) {
      if (!op.cid) {
        events++;
        continue;
      }
      const block = blocks.find((b) => equalBytes(b.cid.bytes, op.cid.bytes));
      if (block) {
        atcuteDecode(block.bytes);
        events++;
      }
    }
  }
  return events;
};

/** The whole path's digest of every event (the same in every run: a change that alters an event's bytes shows here). */
let wholePathSha256: string | undefined;

async function wholePath(frames: Uint8Array[], dictionary: Buffer): Promise<TimedRun> {
  const run = await ingestIntoFreshBuffer(frames, { hotLogBytes: 64 * 1024 * 1024, dictionary });
  if (wholePathSha256 !== undefined && run.sha256 !== wholePathSha256) throw new Error(`the whole path's events differ between runs: SHA-256 ${run.sha256}, before ${wholePathSha256}`);
  wholePathSha256 = run.sha256;
  return run;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export async function run(): Promise<Row[]> {
  const frames = preparedFrames(FRAMES, { seed: 1, accounts: 5_000 }).map((f) => f.bytes);
  const dictionary = readFileSync(DICTIONARY);
  const cases: Array<[string, (frames: Uint8Array[]) => Promise<TimedRun>]> = [
    ['contrail (decode + verify + JSON)', (f) => timeEvents(() => contrail(f))],
    ['@atproto/sync parseCommitUnauthenticated', (f) => timeEvents(() => atprotoSync(f))],
    ['@atcute/cbor + @atcute/car (bare decode)', (f) => timeEvents(() => atcute(f))],
    ['contrail whole ingest path (+ Ingester, EventStore: tail, zstd blocks, indexes, hot log)', (f) => wholePath(f, dictionary)],
  ];
  const rates = new Map<string, Array<{ rate: number; cpuRate: number }>>();
  let expectedEvents = -1;
  for (let run = 0; run < RUNS + 1; run++) {
    for (const [name, measure] of cases) {
      const { events, seconds, cpuSeconds } = await measure(frames);
      if (run === 0) {
        // Warm-up pass; also checks every case saw the same events (the whole path stored them all).
        if (expectedEvents < 0) expectedEvents = events;
        else if (events !== expectedEvents) throw new Error(`${name} produced ${events} events, contrail ${expectedEvents}`);
        continue;
      }
      rates.set(name, [...(rates.get(name) ?? []), { rate: events / seconds, cpuRate: events / cpuSeconds }]);
    }
  }
  const ours = median(rates.get(cases[0]![0])!.map((r) => r.rate));
  return cases.map(([name]) => {
    const rate = median(rates.get(name)!.map((r) => r.rate));
    const cpuRate = median(rates.get(name)!.map((r) => r.cpuRate));
    return {
      bench: 'ingest',
      case: name,
      'events/s': Math.round(rate),
      'µs/event': (1e6 / rate).toFixed(2),
      'events/CPU-s': Math.round(cpuRate),
      'CPU µs/event': (1e6 / cpuRate).toFixed(2),
      'contrail ×': (ours / rate).toFixed(2),
    };
  });
}

if (fileURLToPath(import.meta.url) === process.argv[1]) {
  printTable(`ingest: ${FRAMES} synthetic frames, median of ${RUNS} runs, one core`, await run());
  process.stdout.write(`whole path: SHA-256 of every event's JSON, in order: ${wholePathSha256}\n`);
}
