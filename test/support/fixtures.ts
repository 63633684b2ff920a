/**
 * Test data. Real frames and interop vectors are copied into test/fixtures (see its
 * PROVENANCE.md), so they are always there: a missing one is an error, never a skip. Jetstream's
 * v1 zstd dictionary is the one exception: the project does not commit it, so tests read it from
 * ../shared beside the project and skip, saying why, where it is absent.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const FIXTURES = new URL('../fixtures/', import.meta.url);

export function fixturePath(relative: string): string {
  return fileURLToPath(new URL(relative, FIXTURES));
}

export function readFixture(relative: string): Buffer {
  return readFileSync(fixturePath(relative));
}

export function readJsonFixture<T = unknown>(relative: string): T {
  return JSON.parse(readFixture(relative).toString('utf8')) as T;
}

/** Jetstream v1's zstd dictionary, in the shared fixtures beside the project (never copied into it). */
export const V1_DICTIONARY = fileURLToPath(new URL('../../../shared/fixtures/zstd/jetstream-v1-zstd_dictionary', import.meta.url));

/** undefined when the v1 dictionary is there, else the reason a test that needs it is skipped. */
export function v1DictionarySkipReason(): string | undefined {
  return existsSync(V1_DICTIONARY)
    ? undefined
    : `skipped: needs Jetstream's v1 zstd dictionary at ${V1_DICTIONARY}, which the project reads from ../shared and never copies in`;
}
