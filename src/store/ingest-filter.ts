import { isNsid } from '../atproto/index.ts';

/**
 * `--ingest-collections`: which commit ops a small instance keeps in its buffer. Each pattern
 * is an NSID (`app.bsky.feed.post`) or a prefix ending in `.*` (`app.bsky.feed.*`). Identity,
 * account and sync events carry no collection and are always kept: clients need them whatever
 * they filter (a #sync resets every collection of its repo). Returns undefined for "keep everything".
 */
export function collectionKeeper(patterns: readonly string[]): ((collection: string) => boolean) | undefined {
  if (patterns.length === 0) return undefined;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const pattern of patterns) {
    if (pattern.endsWith('.*') && isNsid(`${pattern.slice(0, -2)}.x`)) prefixes.push(pattern.slice(0, -1));
    else if (isNsid(pattern)) exact.add(pattern);
    else throw new Error(`${JSON.stringify(pattern)} is neither an NSID nor a prefix ending in .* (e.g. app.bsky.feed.*)`);
  }
  return (collection) => exact.has(collection) || prefixes.some((prefix) => collection.startsWith(prefix));
}
