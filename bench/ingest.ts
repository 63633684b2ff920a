/**
 * bench/ingest: upstream frames → JSON events per second, one core, over a realistic mix
 * (test/support/synthetic.ts), beside two peers decoding the same frames in the same run:
 *   - @atproto/sync 0.1.40: Frame.fromBytes (the decoder its Firehose uses) + parseCommitUnauthenticated
 *     / parseAccount → event objects (no JSON);
 *   - @atcute/cbor + @atcute/car: a bare decode of header, body, CAR and record blocks (no JSON,
 *     no CID verification) — the fastest JS decoders known, a floor for any decoder.
 * contrail's figure includes CID verification and the final JSON bytes; these three take turns in
 * this process, a warm-up pass and RUNS timed ones each.
 *
 * The whole ingest path (decodeFrame, parseMessage, the Ingester's group commits into an
 * EventStore without fsync, as `contrail serve` runs it: the tail, zstd blocks with contrail's
 * dictionary, the per-DID index, the hot log; 64 frames per turn of the event loop as a socket
 * read hands them over, into a fresh buffer each pass) runs in a child process of its own that
 * does nothing else, ALONE_PASSES passes, and so does the @atcute peer, alternating, ALONE_ROUNDS
 * rounds: each reports its first pass (cold: a fresh process's JIT and heap) and its sustained
 * rate (the median of passes STEADY_FROM on, once the JIT has settled), the rate a gateway that
 * ingests for days runs at. Every figure also gives events per CPU-second of the process (all its
 * threads), which other load on the machine distorts less.
 *
 *   node --max-semi-space-size=64 --import tsx bench/ingest.ts [--alone whole-path|atcute]
 *
 * `--alone NAME` is one child: it prints one JSON line per pass.
 */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
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
/** Passes of a child process running one case alone, the first of which is its cold pass. */
const ALONE_PASSES = 16;
/** The first pass counted as sustained: in a process that only ingests, V8 still optimizes (and deoptimizes) the path's functions through pass 6 or so. */
const STEADY_FROM = 7;
const ALONE_ROUNDS = 2;
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

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function loadFrames(): Uint8Array[] {
  return preparedFrames(FRAMES, { seed: 1, accounts: 5_000 }).map((f) => f.bytes);
}

/** The decoders, taking turns in this process: a warm-up pass (which also checks they all saw the same events), then RUNS timed ones. */
export async function run(): Promise<Row[]> {
  const frames = loadFrames();
  const cases: Array<[string, Decoder]> = [
    ['contrail (decode + verify + JSON)', contrail],
    ['@atproto/sync parseCommitUnauthenticated', atprotoSync],
    ['@atcute/cbor + @atcute/car (bare decode)', atcute],
  ];
  const rates = new Map<string, Array<{ rate: number; cpuRate: number }>>();
  let expectedEvents = -1;
  for (let run = 0; run < RUNS + 1; run++) {
    for (const [name, decode] of cases) {
      const { events, seconds, cpuSeconds } = await timeEvents(() => decode(frames));
      if (run === 0) {
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

/** One pass of a case run alone, as a child prints it. */
interface AlonePass {
  pass: number;
  events: number;
  seconds: number;
  cpuSeconds: number;
  sha256?: string;
}

const ALONE_CASES = {
  'whole-path': 'contrail whole ingest path (+ Ingester, EventStore: tail, zstd blocks, indexes, hot log)',
  atcute: '@atcute/cbor + @atcute/car (bare decode, peer)',
} as const;
type AloneCase = keyof typeof ALONE_CASES;

/** A child's work: ALONE_PASSES passes of one case over the frames, nothing else, one JSON line each. */
async function runAlone(name: AloneCase): Promise<void> {
  const frames = loadFrames();
  const dictionary = readFileSync(DICTIONARY);
  for (let pass = 1; pass <= ALONE_PASSES; pass++) {
    const run: TimedRun & { sha256?: string } =
      name === 'whole-path' ? await ingestIntoFreshBuffer(frames, { hotLogBytes: 64 * 1024 * 1024, dictionary }) : await timeEvents(() => atcute(frames));
    const line: AlonePass = { pass, events: run.events, seconds: run.seconds, cpuSeconds: run.cpuSeconds, ...(run.sha256 ? { sha256: run.sha256 } : {}) };
    process.stdout.write(JSON.stringify(line) + '\n');
  }
}

/** Runs each case alone in a child process (same V8 flags as this one), alternating, ALONE_ROUNDS rounds; the whole path's digest must not vary. */
function runAloneCases(): { rows: Row[]; sha256: string } {
  const passes = new Map<AloneCase, AlonePass[]>();
  let sha256: string | undefined;
  for (let round = 0; round < ALONE_ROUNDS; round++) {
    for (const name of Object.keys(ALONE_CASES) as AloneCase[]) {
      const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--alone', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
      if (child.status !== 0) throw new Error(`bench/ingest --alone ${name} exited with ${child.status ?? child.signal}`);
      const lines = child.stdout.trim().split('\n').map((line) => JSON.parse(line) as AlonePass);
      for (const line of lines) {
        if (line.sha256 === undefined) continue;
        if (sha256 !== undefined && line.sha256 !== sha256) throw new Error(`the whole path's events differ between passes: SHA-256 ${line.sha256}, before ${sha256}`);
        sha256 = line.sha256;
      }
      passes.set(name, [...(passes.get(name) ?? []), ...lines]);
    }
  }
  const stats = (name: AloneCase) => {
    const all = passes.get(name)!;
    const cpuRate = (list: AlonePass[]) => median(list.map((p) => p.events / p.cpuSeconds));
    const steady = all.filter((p) => p.pass >= STEADY_FROM);
    return { first: cpuRate(all.filter((p) => p.pass === 1)), steady: cpuRate(steady), steadyWall: median(steady.map((p) => p.events / p.seconds)) };
  };
  const whole = stats('whole-path');
  const peer = stats('atcute');
  /** A rate rounded, or a ratio of two rates to three places. */
  const figure = (value: number) => (value > 10 ? Math.round(value) : value.toFixed(3));
  const row = (name: string, cold: number, sustained: number, wall?: number): Row => ({
    bench: 'ingest, alone',
    case: name,
    'cold: events/CPU-s (pass 1)': figure(cold),
    [`sustained: events/CPU-s (passes ${STEADY_FROM}–${ALONE_PASSES})`]: figure(sustained),
    'sustained CPU µs/event': wall === undefined ? '' : (1e6 / sustained).toFixed(2),
    'sustained events/s': wall === undefined ? '' : Math.round(wall),
  });
  return {
    rows: [
      row(ALONE_CASES['whole-path'], whole.first, whole.steady, whole.steadyWall),
      row(ALONE_CASES.atcute, peer.first, peer.steady, peer.steadyWall),
      row('whole path ÷ @atcute', whole.first / peer.first, whole.steady / peer.steady),
    ],
    sha256: sha256!,
  };
}

if (fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { alone: { type: 'string' } } });
  if (values.alone !== undefined) {
    if (!(values.alone in ALONE_CASES)) throw new Error(`--alone takes ${Object.keys(ALONE_CASES).join(' or ')}`);
    await runAlone(values.alone as AloneCase);
  } else {
    printTable(`ingest: ${FRAMES} synthetic frames, median of ${RUNS} runs, one core`, await run());
    const alone = runAloneCases();
    printTable(`ingest, each case alone in a process of its own: ${ALONE_PASSES} passes over the ${FRAMES} frames, ${ALONE_ROUNDS} processes each, alternating; medians`, alone.rows);
    process.stdout.write(`whole path: SHA-256 of every event's JSON, in order: ${alone.sha256}\n`);
  }
}
