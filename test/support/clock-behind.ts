/**
 * A process whose wall clock is behind the machine's, or stepped while it runs, for tests of clock skew:
 * libfaketime (Debian's `faketime` package) preloaded into it shifts what the system calls for
 * the time of day answer (Date.now, performance.timeOrigin), and nothing in contrail knows. The
 * monotonic clock is left as it is, so timers and elapsed times run as in any process.
 */
import { existsSync } from 'node:fs';

const LIBFAKETIME = `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/faketime/libfaketime.so.1`;

/** The environment that starts a process with its wall clock `seconds` behind. */
export function clockBehindEnv(seconds: number): Record<string, string> {
  return { LD_PRELOAD: LIBFAKETIME, FAKETIME: `-${seconds}s`, FAKETIME_DONT_FAKE_MONOTONIC: '1' };
}

/** The environment that starts a process on the offset written in `file` (`+0`, `-3600s`), read again at most a second after it changes: a test steps the clock by writing it. */
export function clockSteppedEnv(file: string): Record<string, string> {
  return { LD_PRELOAD: LIBFAKETIME, FAKETIME_TIMESTAMP_FILE: file, FAKETIME_CACHE_DURATION: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' };
}

/** A skip reason when libfaketime is not installed (apt-get install faketime), else false. */
export function libfaketimeMissing(): string | false {
  return existsSync(LIBFAKETIME) ? false : `libfaketime is not installed (${LIBFAKETIME}: apt-get install faketime)`;
}
