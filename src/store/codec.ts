import type { Entry, EventKind } from '../events/entry.ts';

/**
 * A stored event: a small header with the fields filters read — kind, DID, collection —
 * then the event's JSON bytes, so replay can filter without parsing JSON.
 *
 *   u8 kind | u16 didLength | did | u16 collectionLength | collection | json…
 *
 * DIDs and NSIDs are ASCII (checked upstream), so latin1 is an exact, fast decoding.
 */
const KINDS: readonly EventKind[] = ['commit', 'identity', 'account'];
const KIND_CODES: Record<EventKind, number> = { commit: 0, identity: 1, account: 2 };

export function encodeEntry(entry: Entry): Buffer {
  const collection = entry.collection ?? '';
  const headerLength = 5 + entry.did.length + collection.length;
  const out = Buffer.allocUnsafe(headerLength + entry.json.byteLength);
  out[0] = KIND_CODES[entry.kind];
  out.writeUInt16BE(entry.did.length, 1);
  out.write(entry.did, 3, 'latin1');
  const collectionAt = 3 + entry.did.length;
  out.writeUInt16BE(collection.length, collectionAt);
  out.write(collection, collectionAt + 2, 'latin1');
  entry.json.copy(out, headerLength);
  return out;
}

export function decodeEntry(timeUs: number, stored: Buffer): Entry {
  const didLength = stored.readUInt16BE(1);
  const did = stored.toString('latin1', 3, 3 + didLength);
  const collectionAt = 3 + didLength;
  const collectionLength = stored.readUInt16BE(collectionAt);
  const jsonAt = collectionAt + 2 + collectionLength;
  return {
    timeUs,
    did,
    kind: KINDS[stored[0]],
    collection: collectionLength === 0 ? null : stored.toString('latin1', collectionAt + 2, jsonAt),
    json: stored.subarray(jsonAt),
  };
}
