/**
 * The synthetic frames a benchmark feeds in, made before anything is timed. Making them costs
 * about a millisecond a frame here (every frame's 4–7 MST nodes get fresh sha256 CIDs, CBOR and a
 * CAR; a fifth of it is GC), so they are kept in the OS temp dir between runs; the seed, the
 * accounts and the count name the file, and a seed always yields the same bytes — so the first
 * `count` frames of a longer file with the same seed and accounts are the same frames, and are
 * read from it rather than made again.
 */
import { closeSync, existsSync, openSync, readdirSync, readSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SyntheticFirehose, type SyntheticFrame } from '../test/support/synthetic.ts';

/** The first `count` frames of the stream SyntheticFirehose makes from `seed` over `accounts` accounts. */
export function preparedFrames(count: number, options: { seed: number; accounts: number }): SyntheticFrame[] {
  const { seed, accounts } = options;
  const prefix = `contrail-bench-frames-${seed}-${accounts}-`;
  const path = join(tmpdir(), `${prefix}${count}.bin`);
  // This count's file, or else the shortest longer one.
  const kept = readdirSync(tmpdir())
    .map((name) => ({ name, count: name.startsWith(prefix) && name.endsWith('.bin') ? Number(name.slice(prefix.length, -4)) : NaN }))
    .filter((file) => Number.isInteger(file.count) && file.count >= count)
    .sort((a, b) => a.count - b.count)[0];
  if (kept) {
    const frames = readFrames(join(tmpdir(), kept.name), count);
    if (frames.length === count) return frames;
  }
  process.stderr.write(`making ${count.toLocaleString('en-US')} frames (kept in ${path} for the next run)…\n`);
  const frames = new SyntheticFirehose({ seed, accounts }).frames(count);
  const parts = frames.flatMap((frame) => {
    const header = Buffer.alloc(12);
    header.writeUInt32LE(frame.seq);
    header.writeUInt32LE(frame.events, 4);
    header.writeUInt32LE(frame.bytes.byteLength, 8);
    return [header, frame.bytes];
  });
  writeFileSync(path, Buffer.concat(parts));
  return frames;
}

/** Up to `count` frames from the start of a kept file (a longer file is read only as far as needed). */
function readFrames(path: string, count: number): SyntheticFrame[] {
  if (!existsSync(path)) return [];
  const fd = openSync(path, 'r');
  try {
    const frames: SyntheticFrame[] = [];
    let chunk = Buffer.alloc(0);
    let at = 0;
    /** Makes sure `bytes` bytes from `at` are in `chunk`; false at the file's end. */
    const have = (bytes: number): boolean => {
      if (at + bytes <= chunk.byteLength) return true;
      const rest = chunk.subarray(at);
      const next = Buffer.allocUnsafe(Math.max(16 * 1024 * 1024, bytes));
      rest.copy(next);
      const read = readSync(fd, next, rest.byteLength, next.byteLength - rest.byteLength, null);
      chunk = next.subarray(0, rest.byteLength + read);
      at = 0;
      return bytes <= chunk.byteLength;
    };
    while (frames.length < count && have(12)) {
      const seq = chunk.readUInt32LE(at);
      const events = chunk.readUInt32LE(at + 4);
      const length = chunk.readUInt32LE(at + 8);
      if (!have(12 + length)) break;
      frames.push({ seq, events, bytes: chunk.subarray(at + 12, at + 12 + length) });
      at += 12 + length;
    }
    return frames;
  } finally {
    closeSync(fd);
  }
}
