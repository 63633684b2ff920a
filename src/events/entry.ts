import type { OpDrop, UpstreamMessage } from '../upstream/index.ts';
import type { CursorClock } from './clock.ts';
import { ByteWriter, decimalDigits } from './byte-writer.ts';
import { writeRecordJson } from './record-bytes.ts';

export type EventKind = 'commit' | 'identity' | 'account' | 'sync';

/**
 * One event as every later stage sees it: the metadata a filter needs, and the event's JSON
 * bytes, serialized once and shared by the store, the hot log and every subscriber.
 */
export interface Entry {
  timeUs: number;
  /**
   * The store's sequence number: unique, strictly increasing, never reused (see the store's
   * design note). Set by the store when it commits the event (or given by a replication leader);
   * every entry read from the store, its hot log or its onCommitted listeners has it.
   */
  seq?: number;
  did: string;
  kind: EventKind;
  /** The record's collection for commit events; null for the repo-level kinds (identity, account, sync). */
  collection: string | null;
  json: Buffer;
}

/** The messages that become events; a commit's proof is verification's business, not read here. */
type EventMessage = Omit<Extract<UpstreamMessage, { type: 'commit' }>, 'proof'> | Extract<UpstreamMessage, { type: 'identity' | 'account' | 'sync' }>;

export interface BuiltEvents {
  entries: Entry[];
  /** The ops dropped here (bad_record); those dropped while parsing stay on the message, reported by the reader. */
  drops: OpDrop[];
}

/**
 * Turns an upstream message into Jetstream v1 events, one per commit op, each taking the next
 * cursor from `clock`. Keys are written in Jetstream's order. DIDs, NSIDs, record keys and CIDs
 * were syntax-checked upstream and contain nothing JSON must escape, so they are quoted directly.
 */
export function buildEvents(message: EventMessage, clock: CursorClock): BuiltEvents {
  switch (message.type) {
    case 'commit':
      return buildCommitEvents(message, clock);
    case 'identity': {
      const timeUs = clock.next();
      const handle = message.handle === undefined ? '' : `"handle":${JSON.stringify(message.handle)},`;
      const json = `{"did":"${message.did}","time_us":${timeUs},"kind":"identity","identity":{"did":"${message.did}",${handle}"seq":${message.seq},"time":${JSON.stringify(message.time)}}}`;
      return { entries: [entry(timeUs, message.did, 'identity', null, json)], drops: [] };
    }
    case 'account': {
      const timeUs = clock.next();
      // Status before time: Jetstream marshals indigo's struct, whose fields are in lexicon (alphabetical) order.
      const status = message.status === undefined ? '' : `"status":${JSON.stringify(message.status)},`;
      const json = `{"did":"${message.did}","time_us":${timeUs},"kind":"account","account":{"active":${message.active},"did":"${message.did}","seq":${message.seq},${status}"time":${JSON.stringify(message.time)}}}`;
      return { entries: [entry(timeUs, message.did, 'account', null, json)], drops: [] };
    }
    case 'sync': {
      // The upstream object as identity's and account's are (lexicon key order; `blocks` as the
      // data model's unpadded-base64 $bytes, which v2 sends as it is), plus the commit's MST root.
      const timeUs = clock.next();
      const blocks = Buffer.from(message.blocks.buffer, message.blocks.byteOffset, message.blocks.byteLength).toString('base64').replace(/=+$/, '');
      const json = `{"did":"${message.did}","time_us":${timeUs},"kind":"sync","sync":{"blocks":{"$bytes":"${blocks}"},"data":"${message.data}","did":"${message.did}","rev":${JSON.stringify(message.rev)},"seq":${message.seq},"time":${JSON.stringify(message.time)}}}`;
      return { entries: [entry(timeUs, message.did, 'sync', null, json)], drops: [] };
    }
  }
}

/** Where commit events are assembled (reused: building events is synchronous and never re-entered). */
const eventBytes = new ByteWriter();
/** Digits of the largest time_us the head leaves room for (2^53). */
const TIME_US_DIGITS = 16;
/** A commit event's head around its variable parts: `{"did":"…","time_us":…,"kind":"commit","commit":{"rev":…,"operation":"…","collection":"…","rkey":"…"`. */
const HEAD_PARTS = ['{"did":"', '","time_us":', ',"kind":"commit","commit":{"rev":', ',"operation":"', '","collection":"', '","rkey":"', '"'] as const;
const HEAD_FIXED_BYTES = HEAD_PARTS.reduce((sum, part) => sum + part.length, 0);
const RECORD_KEY = ',"record":';

function buildCommitEvents(message: Extract<EventMessage, { type: 'commit' }>, clock: CursorClock): BuiltEvents {
  const entries: Entry[] = [];
  const drops: OpDrop[] = [];
  const rev = JSON.stringify(message.rev);
  const revBytes = Buffer.byteLength(rev);
  const { repo } = message;
  for (const op of message.ops) {
    // The record is written first (one that is not a record drops its op before the op takes a
    // time_us), after room for the longest head; the head then goes right before it, written
    // piece by piece (a template string cost a concatenation and its flattening per event), and
    // the event is copied out whole.
    const recordStart = 128 + repo.length + 3 * rev.length + op.collection.length + op.rkey.length + TIME_US_DIGITS;
    eventBytes.length = recordStart;
    if (op.record !== null) {
      try {
        writeRecordJson(eventBytes, op.record);
      } catch (err) {
        drops.push({ reason: 'bad_record', path: `${op.collection}/${op.rkey}`, detail: (err as Error).message });
        continue;
      }
    }
    const recordEnd = eventBytes.length;
    const timeUs = clock.next();
    const headBytes =
      HEAD_FIXED_BYTES + repo.length + decimalDigits(timeUs) + revBytes + op.action.length + op.collection.length + op.rkey.length + (op.record === null ? 0 : RECORD_KEY.length);
    const headStart = recordStart - headBytes;
    eventBytes.length = headStart;
    eventBytes.ascii(HEAD_PARTS[0]);
    eventBytes.ascii(repo);
    eventBytes.ascii(HEAD_PARTS[1]);
    eventBytes.digits(timeUs);
    eventBytes.ascii(HEAD_PARTS[2]);
    if (revBytes === rev.length) eventBytes.ascii(rev);
    else eventBytes.utf8(rev);
    eventBytes.ascii(HEAD_PARTS[3]);
    eventBytes.ascii(op.action);
    eventBytes.ascii(HEAD_PARTS[4]);
    eventBytes.ascii(op.collection);
    eventBytes.ascii(HEAD_PARTS[5]);
    eventBytes.ascii(op.rkey);
    eventBytes.ascii(HEAD_PARTS[6]);
    if (op.record === null) {
      eventBytes.ascii('}}');
    } else {
      eventBytes.ascii(RECORD_KEY);
      eventBytes.length = recordEnd;
      eventBytes.ascii(',"cid":"');
      eventBytes.ascii(op.cid!);
      eventBytes.ascii('"}}');
    }
    entries.push({ timeUs, did: repo, kind: 'commit', collection: op.collection, json: eventBytes.take(headStart) });
  }
  return { entries, drops };
}

function entry(timeUs: number, did: string, kind: EventKind, collection: string | null, json: string): Entry {
  return { timeUs, did, kind, collection, json: Buffer.from(json) };
}
