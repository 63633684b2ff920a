// The two TypeScript Jetstream clients, set up as their READMEs show, with the one change Node 20
// needs (it has no global WebSocket, so the `ws` package is passed in), plus bounded waits.
import { JetstreamSubscription } from '@atcute/jetstream';
import { Jetstream } from '@skyware/jetstream';
import { WebSocket } from 'ws';

/**
 * @atcute/jetstream: `url` is the server's base URL (it appends /subscribe itself), filters go
 * out as an options_update after requireHello, event validation is on (the default). The socket
 * opens when iteration starts, so the iterator is made here and read later.
 */
export function atcuteClient(baseUrl, options = {}) {
  const validationErrors = [];
  let opened;
  const open = new Promise((resolve) => (opened = resolve));
  const subscription = new JetstreamSubscription({
    url: baseUrl,
    ...options,
    // Quick retries only matter if the socket drops; the defaults (3 s+) would only slow a failure.
    ws: { WebSocket, minReconnectionDelay: 100, maxReconnectionDelay: 500 },
    onConnectionOpen: () => opened(),
    onError: (err) => validationErrors.push(err),
  });
  const iterator = subscription[Symbol.asyncIterator]();
  const events = [];
  return {
    subscription,
    open,
    events,
    validationErrors,
    /** Reads events until one matches `stop` (inclusive); bounded by timeoutMs. */
    async readUntil(stop, what, timeoutMs = 20_000) {
      const start = events.length;
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`@atcute/jetstream: no ${what} within ${timeoutMs} ms; got ${events.length - start} events, ${validationErrors.length} validation errors`)),
          timeoutMs,
        );
      });
      try {
        for (;;) {
          const { done, value } = await Promise.race([iterator.next(), timeout]);
          if (done) throw new Error(`@atcute/jetstream: iteration ended before ${what}`);
          events.push(value);
          if (stop(value)) return events.slice(start);
        }
      } finally {
        clearTimeout(timer);
      }
    },
    close: () => iterator.return(),
  };
}

/**
 * @skyware/jetstream: `endpoint` is the full /subscribe URL, filters and cursor go in the URL,
 * events arrive as 'commit' / 'identity' / 'account' emitter events.
 */
export function skywareClient(endpoint, options = {}) {
  const jetstream = new Jetstream({ ws: WebSocket, endpoint, ...options });
  const events = [];
  const errors = [];
  const waiters = new Set();
  const push = (event) => {
    events.push(event);
    for (const waiter of waiters) waiter();
  };
  jetstream.on('commit', push);
  jetstream.on('identity', push);
  jetstream.on('account', push);
  jetstream.on('error', (err) => errors.push(err));
  const open = new Promise((resolve) => jetstream.once('open', resolve));
  jetstream.start();
  return {
    jetstream,
    open,
    events,
    errors,
    /** Resolves with the events up to and including the first that matches `stop`; bounded. */
    waitFor(stop, what, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const index = events.findIndex(stop);
          if (index < 0) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(events.slice(0, index + 1));
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`@skyware/jetstream: no ${what} within ${timeoutMs} ms; got ${events.length} events, errors: ${errors.map(String)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => jetstream.close(),
  };
}
