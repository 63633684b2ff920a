import type { Entry } from '../events/index.ts';
import type { BackfillFailure } from './failure.ts';
import type { RepoRecord } from './repo-car.ts';

/** What the subscriber hub sends: an event (framed by the subscriber's wire) or a status message's JSON. */
export type Outgoing = Entry | Buffer;

/**
 * A backfilled record as a v1 `commit` `create` event of the snapshot's rev, marked with a
 * top-level `"backfilled":true` that v1 clients ignore. Its time_us is the subscriber's
 * position in the live stream when it is sent (see the README: not unique, never ahead).
 */
export function backfilledRecord(did: string, timeUs: number, rev: string, record: RepoRecord): Entry {
  const json = Buffer.from(
    `{"did":"${did}","time_us":${timeUs},"kind":"commit","commit":{"rev":"${rev}","operation":"create","collection":"${record.collection}","rkey":"${record.rkey}","record":${record.json},"cid":"${record.cid}"},"backfilled":true}`,
  );
  return { timeUs, did, kind: 'commit', collection: record.collection, json };
}

/** `{"kind":"backfill",…,"backfill":{"status":"complete","rev","records"}}`: every record of the repo was sent. */
export function backfillCompleteJson(did: string, timeUs: number, rev: string, records: number): Buffer {
  return Buffer.from(`{"did":"${did}","time_us":${timeUs},"kind":"backfill","backfill":{"status":"complete","rev":"${rev}","records":${records}}}`);
}

/** `{"kind":"backfill",…,"backfill":{"status":"failed","reason","message"}}`: no snapshot; live events carry on. */
export function backfillFailedJson(did: string, timeUs: number, failure: BackfillFailure): Buffer {
  return Buffer.from(
    `{"did":"${did}","time_us":${timeUs},"kind":"backfill","backfill":{"status":"failed","reason":"${failure.reason}","message":${JSON.stringify(failure.message)}}}`,
  );
}

const REV_FIELD = Buffer.from('"commit":{"rev":"');

/** The rev of a stored commit event, read from its JSON (written by events/entry.ts in a fixed key order). */
export function commitRev(json: Buffer): string | undefined {
  const at = json.indexOf(REV_FIELD);
  if (at < 0) return undefined;
  const start = at + REV_FIELD.length;
  const end = json.indexOf(0x22, start);
  return end < 0 ? undefined : json.toString('latin1', start, end);
}
