/**
 * Trains contrail's zstd dictionary with the zstd CLI (Debian package `zstd`):
 *
 *   npx tsx scripts/train-dictionary.ts [--events 40000] [--seed 1] [--dict-id 1668247156] [--out dictionaries/contrail-v1.zstd-dict]
 *
 * The corpus is contrail's own JSON events for a realistic synthetic firehose (see
 * test/support/synthetic.ts), one file per event, exactly as subscribers receive them. The
 * real records in test/fixtures/samples are never used here: bench/fanout measures the
 * ratio on them as held-out data. Progress goes to a TTY only.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import binding from 'zstd-napi/binding.js';
import { CursorClock } from '../src/events/clock.ts';
import { eventsOf } from '../test/support/events.ts';
import { SyntheticFirehose } from '../test/support/synthetic.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '40000' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: 'dictionaries/contrail-v1.zstd-dict' },
    'max-dict': { type: 'string', default: '112640' },
    // "cont" in ASCII; a fixed ID (zstd picks a random one) keeps the output reproducible.
    'dict-id': { type: 'string', default: String(0x636f6e74) },
  },
});

const wanted = Number(values.events);
const progress = process.stderr.isTTY ? (text: string) => process.stderr.write(`\r${text}`) : () => {};

try {
  execFileSync('zstd', ['--version'], { stdio: 'ignore' });
} catch {
  process.stderr.write('train-dictionary: the zstd CLI is missing; install it with `apt-get install zstd`\n');
  process.exit(2);
}

const corpus = mkdtempSync(join(tmpdir(), 'contrail-dict-'));
try {
  const firehose = new SyntheticFirehose({ seed: Number(values.seed), accounts: 20_000 });
  // Realistic, reproducible cursors: a fixed day, ~500 µs apart.
  let now = 1_764_000_000_000_000;
  const clock = new CursorClock(0, () => (now += 500));
  let written = 0;
  while (written < wanted) {
    for (const entry of eventsOf(firehose.next().bytes, clock)) {
      writeFileSync(join(corpus, `${written++}.json`), entry.json);
      if (written % 1000 === 0) progress(`corpus: ${written}/${wanted} events`);
    }
  }
  progress(`corpus: ${written}/${wanted} events, training…\n`);
  // Files in a fixed order, so the same seed always trains the same dictionary.
  const fileList = join(corpus, 'files.txt');
  writeFileSync(fileList, Array.from({ length: written }, (_, i) => join(corpus, `${i}.json`)).join('\n'));
  execFileSync('zstd', ['--train', '--filelist', fileList, '-o', values.out!, `--maxdict=${values['max-dict']}`, `--dictID=${values['dict-id']}`, '-q', '-f'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const id = binding.getDictIDFromDict(readFileSync(values.out!));
  process.stdout.write(`wrote ${values.out} from ${written} events (dictionary ID ${id})\n`);
} finally {
  rmSync(corpus, { recursive: true, force: true });
}
