import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';

/**
 * A tmpfs of `size` (e.g. "1m") mounted at `at`, for tests of a full disk. Root only: mount
 * needs CAP_SYS_ADMIN, which CI has. Undefined where it cannot be made (the caller skips, saying so).
 */
export function smallFileSystem(at: string, size: string): { unmount(): void } | undefined {
  mkdirSync(at, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', at], { stdio: 'pipe' });
  } catch {
    return undefined;
  }
  return { unmount: () => execFileSync('umount', [at]) };
}
