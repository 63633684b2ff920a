/**
 * Stage identity resolves DIDs to what atproto needs from them: the repo signing key and the
 * PDS endpoint. Verification (src/verify) checks commit signatures with the key; backfill
 * fetches repos from the endpoint.
 *
 * How it works: `IdentityResolver.cached(did)` answers synchronously from the cache (LMDB,
 * bounded by entry count, oldest fetch evicted first; see cache.ts), so the ingest path never
 * waits when a DID is known. `resolve(did)` falls back to fetching the DID document — from the
 * PLC directory (`--plc-url`) for did:plc, from the host's /.well-known/did.json for did:web —
 * with one fetch per DID however many callers ask, a bound on fetches at once and on fetches
 * waiting (a caller that bounds its own, as the Verifier does by pausing the upstream, may ask to
 * wait past it), the PLC directory's and did:web hosts' apart (fetch-slots.ts: hosts anyone runs
 * that hold their answers cannot hold up did:plc lookups), a timeout per fetch and a size limit per document, read as JSON after a leading BOM if any (as
 * @atproto/identity's response.json() reads it). Of a document only what atproto allows is kept
 * (did-document.ts): a handle if the alias is one, a key if it is a compressed point, a PDS whose
 * host DNS can name; the cache's map is sized for entries that small. Failures are remembered briefly
 * so an unresolvable DID cannot make every one of its commits hit the directory: 30 s, or until a
 * 429's or 503's Retry-After if sooner (at least 1 s, so one that asks for 0 is not hammered). A 429's or 503's
 * Retry-After (at most 60 s) is a time before which that directory (the PLC directory; each did:web
 * host on its own) is asked nothing (directory-waits.ts): until then a fetch that may wait (asked
 * with `wait`, as resolvePatiently's are) waits for it, any other fails at once as `unreachable`
 * saying so; each wait is logged once and counted. `stop()` ends those waits, resolvePatiently's
 * sleeps between retries and the fetches running, and fails later lookups at once, so a stopped
 * gateway leaves no timer behind and no lookup reads the cache it closes. `refresh(did)`
 * fetches again: on an #identity event and when a signature fails with the cached key, so a
 * rotated key is followed (the latter with `refreshPatiently`, asked again after a passing failure
 * as resolvePatiently is). A fetch's outcome, document or failure, answers only what needs nothing
 * newer than when it began: a refresh joins a fetch only if that began (or has yet to begin) no
 * earlier than the refresh needs (the event's or commit's arrival), is answered by a remembered
 * failure only on the same terms (lookups are), documents carry when their fetch began, and an
 * older one arriving last does not replace a newer one in the cache. A DID has at most two fetches
 * running (a rotation may need one begun after the other), only one while its last fetch failed
 * (a failing directory is not asked twice at once), and one waiting for the newer to end,
 * which every later refresh joins: a burst of #identity events for one DID is one fetch per round
 * trip, not one per event. A stale entry (older than a day) is used while it is refreshed. A
 * document the directory or host says is gone (404, 410: a tombstoned did:plc) leaves the cache, so
 * its key verifies nothing more (an older fetch answering later does not put it back); other
 * failures leave the cached document in use.
 *
 * Why a guard (endpoint-guard.ts, guarded-fetch.ts): DID documents are written by anyone,
 * did:web ones especially, so a URL taken from one could point a fetch at the operator's own
 * network. Such fetches refuse loopback, private and link-local addresses — checked on every
 * address the host name resolves to, at connection time, so DNS rebinding cannot slip past; an
 * IPv6 address carrying an IPv4 one (mapped, NAT64, 6to4, IPv4-compatible, IPv4-translated) is judged by the IPv4 address —
 * unless `--allow-private-endpoints` is set; redirects are not followed and every fetch has a
 * deadline covering its body. Backfill fetches PDS endpoints through the same guard.
 *
 * Files: did-document.ts (reading a DID document), resolver.ts (fetching, concurrency,
 * did:web URLs), fetch-slots.ts (fetches at once and waiting, per source), directory-waits.ts (when
 * each directory that asked to wait may be asked again), cache.ts (LMDB
 * cache), endpoint-guard.ts + guarded-fetch.ts (the SSRF guard and the guarded GET), retry-after.ts
 * (a Retry-After header's wait: also upstream's, for a refused handshake, and backfill's), metrics.ts.
 */
export { type AtprotoIdentity, identityFromDocument } from './did-document.ts';
export { IdentityCache, type IdentityCacheOptions } from './cache.ts';
export { IdentityError, IdentityResolver, unresolvableDid, type IdentityFailure, type IdentityResolverOptions } from './resolver.ts';
export { RefusedEndpointError, checkEndpointUrl, isNonPublicAddress } from './endpoint-guard.ts';
export { BodyTooLargeError, FetchTimeoutError, getGuarded, readBodyLimited, type GuardedRequestOptions } from './guarded-fetch.ts';
export { createIdentityMetrics, type IdentityMetrics } from './metrics.ts';
export { retryAfter } from './retry-after.ts';
