/**
 * A 429's or 503's Retry-After (RFC 9110 10.2.3): delay-seconds or an HTTP date. Here, in the
 * earliest stage that reads one (the DID directory's), so upstream (a relay's refused handshake) and
 * backfill (a PDS's) read it with the same code.
 */

/** Retry-After as delay-seconds or an HTTP date, in ms; undefined when absent or unreadable. */
export function retryAfter(header: string | undefined, now = Date.now()): number | undefined {
  if (header === undefined) return undefined;
  if (/^\s*\d+\s*$/.test(header)) return Number(header) * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
