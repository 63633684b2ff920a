import { CLOSE, type CloseReason } from './close-reasons.ts';
import { parseBackfill } from './backfill-feed.ts';
import { OptionError, parseFilter, type FilterInput, type SubscriberFilter } from './filter.ts';
import type { Wire } from './wire.ts';

/** What a message from the client asks for: nothing, a new filter, or the end of the connection. */
export type ClientRequest = { kind: 'ignore' } | { kind: 'filter'; filter: SubscriberFilter; backfill: boolean } | { kind: 'close'; close: CloseReason };

const IGNORE: ClientRequest = { kind: 'ignore' };

/**
 * How deep a client message may nest arrays and objects (an options_update needs 3 levels). V8's
 * JSON.parse spends about a microsecond per level, on the thread that ingests and sends: one
 * message of a few MiB of brackets held it for seconds. So the depth is counted first, in one
 * pass over the bytes, and a message past it is refused unparsed.
 */
export const MAX_CLIENT_MESSAGE_DEPTH = 32;

/**
 * Reads one client message as Jetstream v1 does: an `options_update` replaces the filter;
 * binary messages and unknown types are ignored; anything that is not a JSON object, or an
 * options_update that does not parse, closes the connection with the reason. Keys are matched
 * as v1's Go encoding/json matches them (goField). contrail adds `wantedKinds` and `backfill`
 * (see backfill-feed.ts). v2's subscribeEvents takes no client messages at all.
 */
export function readClientMessage(data: Uint8Array, binary: boolean, wire: Wire['name'], current: SubscriberFilter, backfillAvailable = false): ClientRequest {
  if (wire === 'v2') return { kind: 'close', close: CLOSE.noClientMessages };
  if (binary) return IGNORE;
  if (nestsDeeperThan(data, MAX_CLIENT_MESSAGE_DEPTH)) return { kind: 'close', close: CLOSE.tooDeep(`more than ${MAX_CLIENT_MESSAGE_DEPTH} deep`) };
  let message: unknown;
  try {
    message = JSON.parse(Buffer.from(data).toString('utf8'));
  } catch (err) {
    return { kind: 'close', close: CLOSE.notJson((err as Error).message) };
  }
  if (!isObject(message)) return { kind: 'close', close: CLOSE.notAnObject };
  const type = goField(message, 'type');
  // v1 decodes type into a Go string: any other JSON value (null aside) fails the message there.
  if (type != null && typeof type !== 'string') return { kind: 'close', close: CLOSE.typeNotAString };
  if (type !== 'options_update') return IGNORE;
  // v1 keeps the payload raw and decodes it into its options struct: `null` decodes there as an
  // empty payload (every filter cleared, the size limit kept), an absent payload fails.
  const rawPayload = goField(message, 'payload');
  const payload = rawPayload === null ? {} : rawPayload;
  if (!isObject(payload)) return { kind: 'close', close: CLOSE.badOptions('payload must be an object') };
  try {
    const input: FilterInput = {};
    for (const key of ['wantedCollections', 'wantedDids', 'wantedKinds'] as const) {
      const list = goField(payload, key);
      if (list != null && !Array.isArray(list)) throw new OptionError(`${key} must be an array`);
      input[key] = list ?? undefined;
    }
    // Without the key the size limit stays (Jetstream v1 never changes it on an update).
    input.maxMessageSizeBytes = goField(payload, 'maxMessageSizeBytes') ?? current.maxMessageBytes;
    const filter = parseFilter(input);
    return { kind: 'filter', filter, backfill: parseBackfill(goField(payload, 'backfill'), filter, backfillAvailable) };
  } catch (err) {
    if (!(err instanceof OptionError)) throw err;
    return { kind: 'close', close: CLOSE.badOptions(err.message) };
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/** Whether JSON text (UTF-8: every structural character is one byte) opens more than `max` arrays and objects inside one another, strings aside. */
function nestsDeeperThan(bytes: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) inString = true;
    else if (byte === OPEN_ARRAY || byte === OPEN_OBJECT) {
      if (++depth > max) return true;
    } else if (byte === CLOSE_ARRAY || byte === CLOSE_OBJECT) depth--;
  }
  return false;
}

/**
 * A field of a JSON object as Go's encoding/json finds it: the key in any case (Go folds case when
 * no key matches exactly, and `WantedCollections`, what a client serialising a PascalCase type
 * sends, updates the filter in v1), the last key that matches winning.
 */
function goField(object: Record<string, unknown>, name: string): unknown {
  const folded = name.toLowerCase();
  let value: unknown;
  for (const key of Object.keys(object)) if (key.toLowerCase() === folded) value = object[key];
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
