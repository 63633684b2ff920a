/**
 * The one way tests wait: poll a condition until it holds, failing with what was awaited after
 * a deadline. The deadline is a hang guard, never a timing assertion. A test that must show
 * that something did NOT happen waits for a later thing that would have come after it (a marker
 * event, a counter that shows the input was processed), not for a fixed time.
 */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** `promise`'s value, or 'timed out' if it has none within `ms`: for a test that asserts a wait ends (or not) without hanging. */
export function within<T>(ms: number, promise: Promise<T>): Promise<T | 'timed out'> {
  return Promise.race([promise, new Promise<'timed out'>((resolve) => setTimeout(() => resolve('timed out'), ms).unref())]);
}
