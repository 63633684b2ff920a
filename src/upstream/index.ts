/**
 * Package upstream reads a relay's (or PDS's) com.atproto.sync.subscribeRepos firehose and
 * hands each frame on as a typed, verified message.
 *
 * How it works: one `ws` connection at a time. Each binary message is two DAG-CBOR values
 * (frame.ts: read by atproto's readDagCbor, which covers the shapes frames are made of, and by
 * cborg's strict decoder for anything else, which decides every refusal); the body becomes an
 * UpstreamMessage (messages.ts). For a #commit the `blocks`
 * CAR slice is indexed and every create/update op's record block is hashed and compared with
 * the CID the op names, so nothing downstream ever sees a record the relay did not vouch for; a
 * #sync's commit block (its CAR's root) is hashed the same way and its MST root read from it.
 * Anything malformed is dropped at the smallest unit that is wrong (one op, else one frame),
 * counted by reason and logged without flooding; the socket carries on. What the relay says in its
 * own words (a frame's strings, #info and error frames) is logged cut to 200 characters, and #info
 * and error frames once per kind and interval, as drops are: a relay may send them as fast as any frame.
 *
 * Why it reconnects forever: a quiet upstream is normal (a small PDS may be silent for hours),
 * so silence is never a reason to exit. Liveness comes from WebSocket pings, and from messages
 * completing: a message begun must end within 60 s of reading time (a relay sending one as endless
 * fragments answers every ping between them, and ws shows nothing of it until it ends); a lost connection
 * is retried with capped exponential backoff and full jitter, resuming at the cursor the
 * consumer reports (the last seq it accepted), so nothing is skipped and duplicates are the
 * consumer's to discard by seq; a run of frames at or below the highest seq read that lasts (a
 * relay whose numbering jumped ahead or restarted) is said once and fails /ready, here where
 * every frame is seen whatever stage drops it (seqs-behind.ts), and so does a run of frames none of
 * which is kept: each undecoded, a #commit with every op dropped, or an #info or error frame (nothing-kept-run.ts). A connection resets the backoff only once it delivered an
 * event with a seq new to it (an #info or error frame is none, nor a frame at or below its cursor:
 * a relay replaying the same window after every connect is no progress) or answered a ping: one that never answers is a failure
 * however long it lived, and after a failure the next one is not ready until it answers. A
 * refused handshake (any answer but 101) is said with its status; a 429's or 503's Retry-After is
 * waited for before the next dial (at most 10 minutes: the relay asked, and knows its load); a
 * redirect is not followed (where contrail reads from is the operator's choice) but its Location is
 * shown, redacted as the upstream URL is.
 * Backpressure: the consumer can pause() the socket while its write queue is full; TCP then
 * pushes back on the relay. A paused
 * socket reads nothing, pongs included, so paused time is never held against the relay: no ping
 * is judged, an unanswered reconnect is not reported, and a connection paused from open to close
 * is no failure for the backoff.
 *
 * Files:
 *   firehose.ts  FirehoseClient: the connection, pings, reconnects with backoff
 *   message-prefix.ts  MessagePrefix: the first bytes (and seq) of a message too large for the socket, which it judges and closes for, and the message in progress, read beside ws
 *   seqs-behind.ts  SeqsBehind: frames that keep coming at or below the highest seq read, said once
 *   nothing-kept-run.ts  NothingKeptRun: frames that keep nothing (undecoded, every op of a commit dropped, #info and error frames) with none kept, said once
 *   frame.ts     decodeFrame: one WebSocket message → header and body (DAG-CBOR, strict)
 *   messages.ts  parseMessage: a frame body → a typed UpstreamMessage, each record op verified
 *   car.ts       CarSlice: a commit's CAR blocks located in place, without decoding
 *   drop.ts      DropReason, DropError, DropLog (rate-limited: drops, #info and error frames), DropReporter (every stage's drops: one counter, one log), cutRelayString (a relay's string as logged)
 *   metrics.ts   the upstream Prometheus metrics
 *   url.ts       normalizeUpstreamUrl: a relay address as people write it → the URL to dial
 *   backoff.ts   backoffDelay: capped exponential backoff with optional jitter (also ingest's retries)
 *   demo.ts      DemoUpstream (`--upstream demo`): a seeded synthetic network in place of a relay
 *   seeded.ts    mulberry32, SeededRandom, tidFor: seeded made-up values (the demo's, and the tests' synthetic firehose)
 */
export { FirehoseClient, type FirehoseClientOptions } from './firehose.ts';
export { decodeFrame, type Frame } from './frame.ts';
export { parseMessage, type CommitProof, type OpAction, type OpDrop, type ProofOp, type RecordOp, type UpstreamMessage } from './messages.ts';
export { CarSlice } from './car.ts';
export { DropError, DropLog, DropReporter, type DropReason } from './drop.ts';
export { createUpstreamMetrics, type UpstreamMetrics } from './metrics.ts';
export { normalizeUpstreamUrl, redactUrl } from './url.ts';
export { backoffDelay, type BackoffPolicy } from './backoff.ts';
export { DEMO_UPSTREAM, DemoNetwork, DemoUpstream, type UpstreamReader } from './demo.ts';
export { mulberry32, SeededRandom, tidFor } from './seeded.ts';
