/**
 * Every way the hub ends a subscriber's stream, in one table: the WebSocket close code, the
 * reason the client reads in the close frame, and the label counted in
 * contrail_subscriber_disconnects_total. 1000 is a normal end (a `limit` reached); 1001 "going
 * away"; 1007 "invalid payload data" (not JSON); 1008 "policy violation" (a message or a pace
 * the server does not accept); 1011 "internal error" (the buffer could not be read).
 */
export interface CloseReason {
  code: number;
  reason: string;
  metric: 'bad_message' | 'bad_options' | 'cursor_too_old' | 'consumer_too_slow' | 'buffer_damaged' | 'buffer_unreadable' | 'limit_reached' | 'shutdown';
  /** Sent first as an error frame on wires without close frames (HTTP streams), so none ends without saying why. */
  error?: string;
}

const POLICY = 1008;

export const CLOSE = {
  notJson: (detail: string): CloseReason => ({ code: 1007, reason: `message is not JSON: ${detail}`, metric: 'bad_message' }),
  tooDeep: (detail: string): CloseReason => ({ code: POLICY, reason: `message nests arrays and objects ${detail}`, metric: 'bad_message' }),
  notAnObject: { code: POLICY, reason: 'message must be a JSON object with a "type"', metric: 'bad_message' },
  typeNotAString: { code: POLICY, reason: 'message "type" must be a string, e.g. "options_update"', metric: 'bad_message' },
  noClientMessages: {
    code: POLICY,
    reason: 'subscribeEvents takes no client messages: set filters with query parameters and reconnect',
    metric: 'bad_message',
  },
  badOptions: (detail: string): CloseReason => ({ code: POLICY, reason: `invalid options_update: ${detail}`, metric: 'bad_options' }),
  /** A cursor resolved once a cluster node caught up (subscribers.ts, settle) that retention passed meanwhile; its error frame goes first on every wire (as the watchdog's ConsumerTooSlow). */
  cursorTooOld: (message: string): CloseReason => ({ code: POLICY, reason: `CursorTooOld: ${message}`, metric: 'cursor_too_old' }),
  tooSlow: (message: string): CloseReason => ({ code: POLICY, reason: `ConsumerTooSlow: ${message}`, metric: 'consumer_too_slow' }),
  /** The subscriber's next events are in a block damaged on disk (replay-step.ts); its error frame goes first on every wire. */
  bufferDamaged: (message: string): CloseReason => ({ code: 1011, reason: `BufferDamaged: ${message}`, metric: 'buffer_damaged' }),
  /** A read of the subscriber's next events failed otherwise (replay-step.ts): LMDB refused it; its error frame goes first on every wire. */
  bufferUnreadable: (message: string): CloseReason => ({ code: 1011, reason: `BufferUnreadable: ${message}`, metric: 'buffer_unreadable' }),
  limitReached: { code: 1000, reason: 'limit reached', metric: 'limit_reached' },
  shutdown: { code: 1001, reason: 'server shutting down', metric: 'shutdown', error: 'ServerShuttingDown' },
} satisfies Record<string, CloseReason | ((detail: string) => CloseReason)>;

/** Close reasons are limited to 123 bytes of UTF-8. */
export function truncateReason(reason: string): string {
  const bytes = Buffer.from(reason);
  if (bytes.byteLength <= 123) return reason;
  return bytes.subarray(0, 120).toString('utf8').replace(/\uFFFD$/, '') + '...';
}
