import type { BackfillFeed } from './backfill-feed.ts';
import { readClientMessage } from './client-message.ts';
import type { HubHooks } from './hub-options.ts';
import type { Subscriber } from './subscriber.ts';

/**
 * Applies a message from the client (read by readClientMessage): a close ends the stream; an
 * options_update's filter applies wherever the subscriber is — a live one is filed again in the
 * live index under it, a replaying or blocked one reads on with it from its position, one
 * waiting for its hello starts replaying — and its repo backfills keep only the wanted DIDs,
 * starting any newly asked for (one still settling its cursor starts them once settled).
 */
export function applyClientMessage(hub: HubHooks, backfill: BackfillFeed | undefined, subscriber: Subscriber, data: Uint8Array, binary: boolean): void {
  if (subscriber.mode === 'closed') return;
  const request = readClientMessage(data, binary, subscriber.wire.name, subscriber.filter, backfill !== undefined);
  if (request.kind === 'close') return hub.end(subscriber, request.close.metric, request.close);
  if (request.kind === 'ignore') return;
  if (subscriber.mode === 'live') hub.live.remove(subscriber);
  subscriber.filter = request.filter;
  if (subscriber.mode === 'live') hub.live.add(subscriber);
  subscriber.helloDue = false;
  if (subscriber.mode === 'settling') {
    subscriber.backfillDue ||= request.backfill;
    return;
  }
  subscriber.backfill?.retain(request.filter.dids);
  if (request.backfill) backfill?.start(subscriber);
  if (subscriber.mode === 'hello') hub.replayFrom(subscriber, subscriber.position);
}
