/**
 * A test's cleanup steps, run last-registered first, every one of them even when another fails.
 * node:test runs a test's t.after hooks in the order they were registered and skips the rest
 * once one throws (Node 20). So a test that registered `nats.stop()`, then the data dirs'
 * removal, then each node's `stop()`, killed NATS and deleted the data dirs under nodes still
 * running; and a step that threw left the later nodes running, whose piped output kept the test
 * process alive until someone killed them.
 */
import type { TestContext } from 'node:test';

/** Registers one t.after hook; returns `defer(step)`, which adds a step to run before those added earlier. */
export function cleanup(t: Pick<TestContext, 'after'>): (step: () => unknown) => void {
  const steps: Array<() => unknown> = [];
  t.after(async () => {
    const errors: unknown[] = [];
    for (const step of steps.reverse()) {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} cleanup steps failed`);
  });
  return (step) => steps.push(step);
}
