import assert from 'node:assert/strict';
import { BackfillFailure } from '../../src/backfill/index.ts';

/** The BackfillFailure the promise rejects with; anything else (a success, another error) fails the test. */
export async function backfillFailureOf(promise: Promise<unknown>): Promise<BackfillFailure> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof BackfillFailure, `expected a BackfillFailure, got ${err}`);
    return err;
  }
  assert.fail('expected a BackfillFailure, but it succeeded');
}
