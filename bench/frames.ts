/**
 * The synthetic frames a benchmark feeds in, made before anything is timed. Making them costs
 * minutes on a busy 2-core machine (the firehose makes a few hundred a second there), so they are
 * kept in the OS temp dir between runs; the seed, the accounts and the count name the file, and a
 * seed always yields the same bytes.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SyntheticFirehose, type SyntheticFrame } from '../test/support/synthetic.ts';

/** The first `count` frames of the stream SyntheticFirehose makes from `seed` over `accounts` accounts. */
export function preparedFrames(count: number, options: { seed: number; accounts: number }): SyntheticFrame[] {
  const { seed, accounts } = options;
  const path = join(tmpdir(), `contrail-bench-frames-${seed}-${accounts}-${count}.bin`);
  if (existsSync(path)) {
    const data = readFileSync(path);
    const frames: SyntheticFrame[] = [];
    for (let at = 0; at < data.byteLength; ) {
      const seq = data.readUInt32LE(at);
      const events = data.readUInt32LE(at + 4);
      const length = data.readUInt32LE(at + 8);
      frames.push({ seq, events, bytes: data.subarray(at + 12, at + 12 + length) });
      at += 12 + length;
    }
    if (frames.length === count) return frames;
  }
  process.stderr.write(`making ${count.toLocaleString('en-US')} frames (kept in ${path} for the next run)…\n`);
  const frames = new SyntheticFirehose({ seed, accounts }).frames(count);
  const parts = frames.flatMap((frame) => {
    const prefix = Buffer.alloc(12);
    prefix.writeUInt32LE(frame.seq);
    prefix.writeUInt32LE(frame.events, 4);
    prefix.writeUInt32LE(frame.bytes.byteLength, 8);
    return [prefix, frame.bytes];
  });
  writeFileSync(path, Buffer.concat(parts));
  return frames;
}
