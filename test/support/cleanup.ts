/**
 * A test's cleanup steps, run last-registered first, every one of them even when another fails.
 * node:test runs a test's t.after hooks in the order they were registered and skips the rest
 * once one throws (Node 20). So a test that registered `nats.stop()`, then the data dirs'
 * removal, then each node's `stop()`, killed NATS and deleted the data dirs under nodes still
 * running; and a step that threw left the later nodes running, whose piped output kept the test
 * process alive until someone killed them. A harness's own stop (ContrailCluster.stop) runs its
 * steps the same way, through runSteps and settleAll.
 */
import type { TestContext } from 'node:test';

/** Registers one t.after hook; returns `defer(step)`, which adds a step to run before those added earlier. */
export function cleanup(t: Pick<TestContext, 'after'>): (step: () => unknown) => void {
  const steps: Array<() => unknown> = [];
  t.after(() => runSteps(steps.reverse()));
  return (step) => steps.push(step);
}

/** Runs every step in order, each after the one before settled, whichever failed; then throws what failed. */
export async function runSteps(steps: Array<() => unknown>): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  throwAll(errors);
}

/** Awaits every one of `promises` (steps that run side by side), then throws what failed. */
export async function settleAll(promises: Array<Promise<unknown>>): Promise<void> {
  const results = await Promise.allSettled(promises);
  throwAll(results.flatMap((result) => (result.status === 'rejected' ? [result.reason] : [])));
}

function throwAll(errors: unknown[]): void {
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} cleanup steps failed`);
}
