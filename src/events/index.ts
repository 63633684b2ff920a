/**
 * Package events turns upstream messages into Jetstream v1 events (and contrail's opt-in `sync`
 * event, from a #sync): the JSON model and the cursor clock.
 *
 * How it works: buildEvents takes a verified message from upstream/ and writes each event's
 * JSON once, in Jetstream's key order. A commit op's event is written as bytes into a reused
 * ByteWriter: the record first, read byte by byte from its DAG-CBOR (record-bytes.ts), then the
 * envelope around it; the event is copied out at its size. The repo-level events (identity,
 * account, sync: a few per second) are strings, then one Buffer. Each event takes the next
 * time_us from the CursorClock (clock.ts): max(now_µs, last + 1), so cursors are unique and
 * strictly increasing across the ops of a commit, across messages and — because the store
 * hands the clock its last issued value at start — across restarts and wall-clock steps.
 *
 * Why bytes, once: everything downstream (the LMDB value, the hot log, every subscriber's
 * socket, the one zstd compression) shares this Buffer; nothing re-serializes an event.
 * A record that breaks the atproto data model is dropped here (bad_record) before it takes a
 * time_us, and the rest of its commit carries on.
 *
 * Files:
 *   entry.ts        Entry (an event as later stages see it) and buildEvents: message → events
 *   record-bytes.ts writeRecordJson: a DAG-CBOR record block → Jetstream's JSON bytes, read in place
 *   record-json.ts  recordToJson: the same as text, token by token (the reference; rare shapes, refusals, backfill)
 *   byte-writer.ts  ByteWriter: the growable buffer events are assembled in
 *   clock.ts        CursorClock: unique, strictly increasing time_us cursors
 */
export { buildEvents, type BuiltEvents, type Entry, type EventKind } from './entry.ts';
export { CursorClock, wallClockMicros } from './clock.ts';
export { recordToJson } from './record-json.ts';
