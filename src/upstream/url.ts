import { DEMO_UPSTREAM } from './demo.ts';

const SUBSCRIBE_PATH = '/xrpc/com.atproto.sync.subscribeRepos';

/**
 * Accepts a relay or PDS address as people write it — `wss://bsky.network`, `https://host`,
 * `bsky.network`, or the full subscribeRepos URL — and returns the WebSocket URL to dial.
 */
export function normalizeUpstreamUrl(input: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(input) ? input : `wss://${input}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new Error(`${JSON.stringify(input)} is not a URL`);
  }
  const scheme = { 'ws:': 'ws:', 'wss:': 'wss:', 'http:': 'ws:', 'https:': 'wss:' }[url.protocol];
  if (!scheme) throw new Error(`upstream must be ws://, wss://, http:// or https:// (got ${url.protocol}//)`);
  url.protocol = scheme;
  const path = url.pathname.replace(/\/+$/, '');
  url.pathname = path.endsWith(SUBSCRIBE_PATH) ? path : path + SUBSCRIBE_PATH;
  url.searchParams.delete('cursor');
  url.hash = '';
  return url.toString();
}

/**
 * The upstream URL as it may be shown or logged: user, password and every query value (an API
 * key or token, for all contrail knows) replaced with `***`. /stats is readable from any origin.
 */
export function redactUrl(input: string): string {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return DEMO_UPSTREAM.test(input) ? input : '***'; // `demo` is no URL and holds no secret
  }
  if (url.username) url.username = '***';
  if (url.password) url.password = '***';
  for (const key of new Set(url.searchParams.keys())) url.searchParams.set(key, '***');
  return url.toString();
}
