/**
 * When a subscriber that is behind the tip is too slow to keep. It is judged over windows of
 * `windowMs`: at a window's end, a subscriber whose position advanced less than half as far as
 * the stream's tip did is dropped (it would never catch up); otherwise a new window starts.
 * One whose position fell below what retention trimmed has lost events and is dropped at once.
 * Pure: the caller passes the clock reading, so tests need no waiting.
 */
export interface DrainWindow {
  /** When the window started, in ms on the caller's clock. */
  atMs: number;
  /** The subscriber's position and the stream's tip (time_us) then. */
  position: number;
  tip: number;
}

export interface DrainState {
  nowMs: number;
  position: number;
  tip: number;
  trimmedUpTo: number;
}

export type DrainVerdict = { kind: 'keep' } | { kind: 'new_window' } | { kind: 'drop'; message: string };

export const MIN_DRAIN_RATIO = 0.5;
export const FELL_BEHIND = 'fell behind the buffer: the events after your position were trimmed by retention';

export function judgeDrain(window: DrainWindow, now: DrainState, windowMs: number): DrainVerdict {
  if (now.position < now.trimmedUpTo) return { kind: 'drop', message: FELL_BEHIND };
  if (now.nowMs - window.atMs < windowMs) return { kind: 'keep' };
  const streamAdvance = now.tip - window.tip;
  const ownAdvance = now.position - window.position;
  if (streamAdvance > 0 && ownAdvance < streamAdvance * MIN_DRAIN_RATIO) {
    const seconds = Math.round(windowMs / 1000);
    const behind = Math.round((now.tip - now.position) / 1e6);
    return { kind: 'drop', message: `read less than half as fast as the stream for ${seconds}s and is ${behind}s behind` };
  }
  return { kind: 'new_window' };
}
