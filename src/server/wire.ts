import type { Entry } from '../events/index.ts';
import type { EventCompressor } from './compression.ts';
import { v2ErrorFrame, v2Frame, v2FrameBytes } from './v2-frames.ts';

/**
 * What a subscriber's frames look like: Jetstream v1's (/subscribe) or v2's (subscribeEvents),
 * each plain or zstd-compressed. The hub moves every subscriber through the same buffer the
 * same way and asks its wire only for bytes; each wire's frame of an event is made once and
 * shared by every subscriber on that wire.
 */
export interface Wire {
  readonly name: 'v1' | 'v2';
  readonly zstd: boolean;
  /** The event's frame (binary when zstd). */
  frame(entry: Entry): Uint8Array;
  /** The uncompressed frame's length, for maxMessageSizeBytes. */
  frameBytes(entry: Entry): number;
  /** The terminal error frame (v1 sends it as a text frame even to zstd subscribers). */
  errorFrame(error: string, message: string): { bytes: Uint8Array; binary: boolean };
  /** A v2 #info or other control frame, compressed like events when zstd. */
  control(bytes: Buffer): { bytes: Uint8Array; binary: boolean };
}

export function v1Wire(compressor: EventCompressor, zstd: boolean): Wire {
  return {
    name: 'v1',
    zstd,
    frame: zstd ? (entry) => compressor.compressed(entry) : (entry) => entry.json,
    frameBytes: (entry) => entry.json.byteLength,
    errorFrame: (error, message) => ({ bytes: Buffer.from(JSON.stringify({ type: 'error', error, message })), binary: false }),
    control: (bytes) => ({ bytes, binary: false }),
  };
}

/** v2 with zstdDictionary: every frame, errors and #info included, is one zstd frame of the text frame. */
export function v2Wire(compressor: EventCompressor, zstd: boolean): Wire {
  const compressed = new WeakMap<Entry, Uint8Array>();
  const control = zstd ? (bytes: Buffer) => ({ bytes: compressor.compress(bytes), binary: true }) : (bytes: Buffer) => ({ bytes, binary: false });
  return {
    name: 'v2',
    zstd,
    frame: zstd
      ? (entry) => {
          let frame = compressed.get(entry);
          if (!frame) compressed.set(entry, (frame = compressor.compress(v2Frame(entry))));
          return frame;
        }
      : v2Frame,
    frameBytes: v2FrameBytes,
    errorFrame: (error, message) => control(v2ErrorFrame(error, message)),
    control,
  };
}
