/**
 * Where the shared read-only fixtures live (../shared/fixtures beside the project) and how a
 * test skips when they are absent. Tests read them in place; nothing is copied into the project.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = new URL('../../../shared/fixtures/', import.meta.url);

export function fixturePath(relative: string): string {
  return fileURLToPath(new URL(relative, ROOT));
}

/** undefined when the fixture exists, else a skip message naming it (for `{ skip }`). */
export function missingFixture(relative: string): string | undefined {
  const path = fixturePath(relative);
  return existsSync(path) ? undefined : `shared fixture ${path} is absent`;
}

export function readFixture(relative: string): Buffer {
  return readFileSync(fixturePath(relative));
}

export function readJsonFixture<T = unknown>(relative: string): T {
  return JSON.parse(readFixture(relative).toString('utf8')) as T;
}
