/**
 * bench/ingest-profile: where the whole ingest path's CPU goes, per event. The first FRAMES of
 * bench/ingest's frames go through the path as bench/ingest's whole-path child runs them (a fresh
 * buffer each pass), `--passes` times; the passes after the first `--warm` are CPU-profiled
 * (node:inspector, 200 µs sampling) and every sample is charged to the innermost stage on its
 * stack. Prints each pass's CPU µs per event and the profiled passes' split; `--profile FILE`
 * also writes the .cpuprofile. A profiler slows what it samples: compare splits with splits, and
 * rates with unprofiled passes (`--warm` equal to `--passes` profiles nothing) or bench/ingest.
 *
 * By default passes 7–12 are profiled: before pass 7 V8 is still optimizing the path (bench/ingest's
 * STEADY_FROM), and a split of those passes is partly the JIT's.
 *
 *   nice -n 10 node --max-semi-space-size=64 --import tsx bench/ingest-profile.ts [--passes 12] [--warm 6] [--profile FILE]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { preparedFrames } from './frames.ts';
import { splitByStage, type Profile, type Stages } from './profile-split.ts';
import { ingestIntoFreshBuffer } from './ingest-path.ts';

const FRAMES = 8_000;
const DICTIONARY = fileURLToPath(new URL('../dictionaries/contrail-v1.zstd-dict', import.meta.url));

/** Stages by the functions that run them; a sample goes to the innermost one on its stack. */
const STAGES: Stages = [
  ['GC', ['(garbage collector)']],
  ['SHA-256 of records', ['hash']],
  ['frame decode (decodeFrame)', ['decodeFrame']],
  ['parse and verify (parseMessage: CAR, CIDs)', ['parseMessage']],
  ['record JSON', ['writeRecordJson', 'recordToJson']],
  ['event envelope (buildEvents)', ['buildEvents']],
  ['rev check (Ingester, store reads)', ['#isNewRev']],
  ['sealing blocks (zstd, postings, puts)', ['#startSeal', '#sealStep', '#continueSeal', '#finishSeals']],
  ['commit (#write: tail, revs, cursor; hot log)', ['commit']],
  ['idle', ['(idle)']],
];

const { values } = parseArgs({ options: { profile: { type: 'string' }, passes: { type: 'string', default: '12' }, warm: { type: 'string', default: '6' } } });
const PASSES = Number(values.passes);
const WARM_PASSES = Number(values.warm);
const frames = preparedFrames(20_000, { seed: 1, accounts: 5_000 })
  .slice(0, FRAMES)
  .map((frame) => frame.bytes);
const dictionary = readFileSync(DICTIONARY);
const session = new Session();
session.connect();
let profiledEvents = 0;
for (let pass = 0; pass < PASSES; pass++) {
  if (pass === WARM_PASSES) {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
  }
  const { events, cpuSeconds, sha256 } = await ingestIntoFreshBuffer(frames, { hotLogBytes: 64 * 1024 * 1024, dictionary });
  if (pass >= WARM_PASSES) profiledEvents += events;
  process.stdout.write(`pass ${pass + 1}${pass >= WARM_PASSES ? ' (profiled)' : ''}: ${events} events, ${((1e6 * cpuSeconds) / events).toFixed(1)} CPU µs/event, SHA-256 ${sha256.slice(0, 16)}\n`);
}
if (profiledEvents === 0) process.exit(0);
const { profile } = await session.post('Profiler.stop');
if (values.profile) writeFileSync(values.profile, JSON.stringify(profile));
const micros = splitByStage(profile as Profile, STAGES);
const busy = [...micros].reduce((sum, [stage, us]) => (stage === 'idle' ? sum : sum + us), 0);
process.stdout.write(`\nprofiled passes: CPU µs per event by stage\n`);
for (const stage of [...STAGES.map(([name]) => name), 'other']) {
  if (stage === 'idle') continue;
  const us = micros.get(stage) ?? 0;
  process.stdout.write(`${stage.padEnd(48)} ${(us / profiledEvents).toFixed(1).padStart(6)}  ${((100 * us) / busy).toFixed(1).padStart(5)} %\n`);
}
process.stdout.write(`${'all'.padEnd(48)} ${(busy / profiledEvents).toFixed(1).padStart(6)}\n`);
