/**
 * Loaded into each test file's process by `npm test` and `npm run test:cluster` (`--import`), which
 * end that process as soon as its tests are done (`--test-force-exit`: README, Development, says
 * why). Ended so, it would no longer wait for what its tests left running, and an error thrown or a
 * promise rejected just after a test ended — which node:test reports as the file's failure — would
 * go unseen. A root after-hook waits a moment for such errors to surface. Worker threads inherit the
 * flag, so only the main thread registers it (a worker would start a test harness of its own).
 */
import { isMainThread } from 'node:worker_threads';

/** How long a finished test file's process still listens for late errors. */
const LATE_ERRORS_MS = 100;

if (isMainThread) {
  const { after } = await import('node:test');
  const { setTimeout: sleep } = await import('node:timers/promises');
  after(() => sleep(LATE_ERRORS_MS));
}
