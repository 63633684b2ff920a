import type { Entry } from '../events/index.ts';

/** An event's frame, made on the first call and the same bytes after; `made` gives it only if made already. */
export interface FrameOnce<F extends Uint8Array> {
  (entry: Entry): F;
  made(entry: Entry): F | undefined;
}

/**
 * A frame made from an event once and kept on the Entry itself, under a symbol of its own (so it
 * goes when the Entry does), shared by every subscriber the Entry is sent to. Not a WeakMap: a
 * WeakMap entry per event cost a compressed replay from disk about a tenth of its CPU (the map's
 * inserts, and its ephemeron table in every garbage collection), for a million events kept a few
 * seconds.
 */
export function framedOnce<F extends Uint8Array>(name: string, frame: (entry: Entry) => F): FrameOnce<F> {
  const key = Symbol(name);
  type Framed = Entry & { [key: symbol]: F | undefined };
  return Object.assign((entry: Entry) => ((entry as Framed)[key] ??= frame(entry)), { made: (entry: Entry) => (entry as Framed)[key] });
}
