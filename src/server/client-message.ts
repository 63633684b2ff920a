import { CLOSE, type CloseReason } from './close-reasons.ts';
import { parseBackfill } from './backfill-feed.ts';
import { OptionError, parseFilter, type FilterInput, type SubscriberFilter } from './filter.ts';
import type { Wire } from './wire.ts';

/** What a message from the client asks for: nothing, a new filter, or the end of the connection. */
export type ClientRequest = { kind: 'ignore' } | { kind: 'filter'; filter: SubscriberFilter; backfill: boolean } | { kind: 'close'; close: CloseReason };

const IGNORE: ClientRequest = { kind: 'ignore' };

/**
 * Reads one client message as Jetstream v1 does: an `options_update` replaces the filter;
 * binary messages and unknown types are ignored; anything that is not a JSON object, or an
 * options_update that does not parse, closes the connection with the reason. contrail adds
 * `backfill` (see backfill-feed.ts). v2's subscribeEvents takes no client messages at all.
 */
export function readClientMessage(data: Uint8Array, binary: boolean, wire: Wire['name'], current: SubscriberFilter, backfillAvailable = false): ClientRequest {
  if (wire === 'v2') return { kind: 'close', close: CLOSE.noClientMessages };
  if (binary) return IGNORE;
  let message: unknown;
  try {
    message = JSON.parse(Buffer.from(data).toString('utf8'));
  } catch (err) {
    return { kind: 'close', close: CLOSE.notJson((err as Error).message) };
  }
  if (!isObject(message)) return { kind: 'close', close: CLOSE.notAnObject };
  if (message.type !== 'options_update') return IGNORE;
  const payload = message.payload;
  if (!isObject(payload)) return { kind: 'close', close: CLOSE.badOptions('payload must be an object') };
  try {
    for (const key of ['wantedCollections', 'wantedDids', 'wantedKinds'] as const) {
      if (payload[key] != null && !Array.isArray(payload[key])) throw new OptionError(`${key} must be an array`);
    }
    // Without the key the size limit stays (Jetstream v1 never changes it on an update).
    const maxMessageSizeBytes = payload.maxMessageSizeBytes ?? current.maxMessageBytes;
    const filter = parseFilter({ ...(payload as FilterInput), maxMessageSizeBytes });
    return { kind: 'filter', filter, backfill: parseBackfill(payload.backfill, filter, backfillAvailable) };
  } catch (err) {
    if (!(err instanceof OptionError)) throw err;
    return { kind: 'close', close: CLOSE.badOptions(err.message) };
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
