/**
 * Package server serves the buffer to WebSocket clients at /subscribe with Jetstream v1's
 * wire and at /xrpc/network.bsky.jetstream.subscribeEvents with v2's, plus a few plain HTTP
 * routes.
 *
 * How it works: a Transport (uWebSockets.js when its native build loads, `ws` otherwise) owns
 * the sockets and calls a SocketHandler (routes.ts). The upgrade is decided before any
 * WebSocket exists — bad query parameters get HTTP 400 with the reason, limits get 503/429 —
 * and an accepted connection becomes a Subscriber in the SubscriberHub (subscribers.ts) with
 * its Wire (wire.ts): v1 frames, or v2's, each plain or zstd. permessage-deflate is granted per
 * upgrade, from one reading of the client's offer (deflate-offer.ts), up to an operator's cap (it
 * costs CPU per subscriber on uWS); the transport negotiates what was granted and compresses.
 * The hub moves each subscriber's position forward through the store until it reaches the
 * tip, then pushes committed batches to it through the LiveIndex (live-index.ts), which looks
 * subscribers up by DID and collection so a narrow filter costs nothing for other events.
 *
 * Replays read off the main thread: what a replay reads from LMDB — blocks decompressed,
 * decoded, filtered, and compressed subscribers' zstd frames made — is read on replay worker
 * threads (replay-pool.ts, replay-worker.ts), which open the same LMDB environment and read it
 * in a fresh snapshot per read; the hot log (recent events) is still read on the main thread,
 * synchronously, so the step that joins the live index runs between commits as before. A
 * worker's answer waits (replay-reads.ts) for the subscriber's replay turn (replay-turns.ts):
 * handling answers (decoding them) shares the replays' bounded slice of each turn. A worker reads
 * ahead: while a subscriber's batch is sent, the next one beyond the hot log is already asked for
 * (as an answer arrives, from its callback outside the slice: one small request posted; or as
 * it is used), so reading and
 * sending overlap; a subscriber holds at most one batch being sent and one read ahead (in flight
 * or answered, up to 256 KiB of events each), and an answer is used only for the position, filter
 * and generation it was asked with. A replay batch is sent
 * 64 events per step, only while the subscriber's socket is under its high-water mark, so
 * commits and live sends wait behind replays for one slice and one short step at most; a commit
 * due in a turn (the ingester read events it has not committed: `commitDue`) runs before that
 * turn's slice, which steps aside and runs after the commit's live sends, in the same turn. On Linux a worker thread runs at the lowest OS priority
 * (nice 19, that thread alone: threads/thread-priority.ts), so where it and this thread want the same core,
 * ingest and live sends run first and replays read on what is left. On two cores or fewer there
 * are no workers by default (`--replay-workers 0`): there a worker takes CPU from this thread
 * instead of using a spare core, and measured worse for live latency and replay speed alike, at
 * nice 19 too (the README's replay-live benchmark): the replays' sends stay on this thread.
 * A read that fails in its worker is read again here, the worker having said what failed
 * (ReplayFailureKind): damage — a damaged block, which the read here says, or a read LMDB refused
 * or that broke on what it read, which the store counts and says (workerReadFailed) — or a fault
 * (its snapshot older than the request, a bug outside the store's read, which takes a throw inside
 * it, the filter's too, for damage), said once per kind by replay-reads.ts and not counted as damage.
 *
 * Why this shape: one position per subscriber and one way to move it means replay, live, and
 * "fell behind then caught up" are the same code, so there is no replay→live seam to lose or
 * reorder events at. Memory per subscriber is the socket's send buffer, capped by a high-water
 * mark; beyond it the subscriber reads from the store again on drain. uWS keeps a socket's
 * send-buffer memory at its peak for the socket's lifetime (measured: 100 sockets that once
 * held 4.5 MB each kept 455 MB resident after draining), so the mark is small (256 KiB) and a
 * blocked subscriber resumes only once the buffer has emptied — uWS compacts it only then. Events are sent as the
 * exact JSON bytes the store holds, or as each wire's frame of the event (v2's, zstd's), made
 * once and shared. Both wires use the same positions, filters and live index, so a v1 and a v2
 * subscriber with the same filter and cursor get the same events in the same order. On a
 * cluster node a cursor past the buffer's newest event waits (mode 'settling') until the node
 * holds what the cluster's stream held at connect, then is resolved again: it may name events
 * another node served and this one has yet to apply (subscribers.ts, settle).
 *
 * Files:
 *   server.ts            startServer: picks the transport and wires routes, hub and compressor
 *   routes.ts            the HTTP routes and the upgrade decisions (/subscribe, subscribeEvents)
 *   explorer-page.ts     the live explorer page served at / to browsers, and its headers (a CSP by the page's own hashes)
 *   subscribe-events.ts  v2's request side: query, seq/timestamp cursors, XRPC errors
 *   wire.ts              Wire: an event's frame on v1 or v2, plain or zstd
 *   v2-frames.ts         v2's message, #info and error frames, built from the stored v1 JSON
 *   entry-frames.ts      framedOnce: a frame of an event made once, kept on the Entry (v2's, SSE's, NDJSON's)
 *   deflate.ts           permessage-deflate for the ws transport, deflated once per message
 *   deflate-offer.ts     takesDeflateOffer: which permessage-deflate offers are taken (RFC 7692 §7), the rest declined
 *   websocket-handshake.ts  a Sec-WebSocket-Key or Sec-WebSocket-Version that cannot open a WebSocket, refused alike on both transports
 *   subscribers.ts       SubscriberHub: each subscriber's position, the pump, publishing
 *   hub-options.ts       the hub's knobs and their defaults, and the hooks its helpers call back through
 *   options-update.ts    applyClientMessage: a client's options_update applied wherever the subscriber is
 *   backfill-feed.ts     BackfillFeed: starts a subscriber's repo backfills, sends their output in its replay steps
 *   replay-turns.ts      ReplayTurns: replays share one bounded slice per event-loop turn
 *   replay-step.ts       Replayer: one replay step — backfill output or the next batch sent, the trimmed check, joining live
 *   replay-reads.ts      ReplayReads: a replaying subscriber's next batch (hot log here, LMDB on a worker, the next one read ahead while it is sent), stale reads dropped; one following the oldest event reads from the oldest held
 *   replay-pool.ts       ReplayPool: the replay worker threads (a threads WorkerPool), their requests and answers
 *   replay-worker.ts     a replay worker thread: reads, filters and frames in a snapshot of the buffer
 *   subscriber.ts        Admission (before the sink) and Subscriber (with it: send, hang up); positionAtTime, startsAtOldest
 *   client-message.ts    readClientMessage: a client message → ignore, a new filter, or a close
 *   close-reasons.ts     every way the hub ends a stream: code, reason, metric label
 *   watchdog.ts          the hub's timers: slow consumers, pings, heartbeats
 *   slow-consumer.ts     judgeDrain: when a subscriber behind the tip is too slow to keep (pure)
 *   roster.ts            who is connected: counts per client address and for metrics
 *   live-index.ts        LiveIndex: live subscribers bucketed by DID and collection
 *   filter.ts            parseFilter and the per-event filter checks
 *   compression.ts       EventCompressor: one zstd frame per event (live at level 3, replayed at the replay level), shared, kept by sequence number in chunks (plain views of each chunk's ArrayBuffer; compressBound: zstd's bound, computed in JS); checkDictionary: whole and usable, or why not
 *   known-dictionaries.ts  the SHA-256 of each dictionary clients hold by ID (Jetstream v1's, the bundled one)
 *   transport.ts         the Transport interface both socket layers implement
 *   uws-transport.ts     uWebSockets.js (the fast path)
 *   ws-transport.ts      node:http + `ws` (portable)
 *   metrics.ts           the server's counters, handed to prom-client on scrape
 *   metrics-endpoint.ts  GET /metrics on its own port
 *   listen-error.ts      listenError: why a port could not be taken, asked of the kernel again through node:net
 */
export { startServer, type Readiness, type ServerOptions, type SubscribeServer } from './server.ts';
export { startMetricsEndpoint } from './metrics-endpoint.ts';
export { checkDictionary, EventCompressor, DEFAULT_LEVEL, DEFAULT_REPLAY_LEVEL, ZSTD_LEVELS } from './compression.ts';
export { loadUws } from './uws-transport.ts';
export { defaultReplayWorkers } from './replay-pool.ts';
