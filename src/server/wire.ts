import type { Entry } from '../events/index.ts';
import type { EventCompressor } from './compression.ts';
import { framedOnce } from './entry-frames.ts';
import { v2ErrorFrame, v2Frame, v2FrameBytes } from './v2-frames.ts';

/**
 * What a subscriber's frames look like: Jetstream v1's (/subscribe) or v2's (subscribeEvents),
 * each plain or zstd-compressed, or an HTTP stream's (/stream: Server-Sent Events;
 * /stream.ndjson: lines). The hub moves every subscriber through the same buffer the same way
 * and asks its wire only for bytes; each wire's frame of an event is made once and shared by
 * every subscriber on that wire.
 */
export interface Wire {
  readonly name: 'v1' | 'v2' | 'sse' | 'ndjson';
  readonly zstd: boolean;
  /**
   * Whether the transport carries a close reason of its own (a WebSocket close frame). Where it
   * does not (HTTP streams), the hub sends the reason as a last error frame before the end.
   */
  readonly closeFrame: boolean;
  /**
   * Bytes an HTTP stream starts with (SSE: a comment; NDJSON: a line with a "type", which clients
   * skip as they skip heartbeats). uWS finishes a response's head only with its first body byte,
   * so without them a quiet stream's client (node:http, fetch, curl) would see no response.
   */
  readonly prelude?: Uint8Array;
  /**
   * The opt-in heartbeat (v1 and the HTTP streams): `time_us` is a cursor that resumes right
   * after everything the subscriber has examined; SSE also makes it the message id.
   */
  heartbeat?(resumeAt: number): { bytes: Uint8Array; binary: boolean };
  /** The event's frame (binary when zstd). */
  frame(entry: Entry): Uint8Array;
  /**
   * The event's frame for a subscriber catching up (a replay, a backfill), where it differs from
   * `frame`: v1's zstd frame, made at the replay level unless kept already. (v2's zstd frames stay
   * at the live level: kept on the Entry, one frame serves both.)
   */
  replayFrame?(entry: Entry): Uint8Array;
  /** The uncompressed frame's length, for maxMessageSizeBytes. */
  frameBytes(entry: Entry): number;
  /**
   * The terminal error frame (v1 sends it as a text frame even to zstd subscribers). `cursor`,
   * where there is one, is where the client resumes past what the error lost (a time_us, inclusive).
   */
  errorFrame(error: string, message: string, cursor?: number): { bytes: Uint8Array; binary: boolean };
  /** A v2 #info or other control frame, compressed like events when zstd. */
  control(bytes: Buffer): { bytes: Uint8Array; binary: boolean };
}

export function v1Wire(compressor: EventCompressor, zstd: boolean): Wire {
  return {
    name: 'v1',
    zstd,
    closeFrame: true,
    frame: zstd ? compressor.compressed : (entry) => entry.json,
    ...(zstd ? { replayFrame: compressor.replayed } : {}),
    frameBytes: (entry) => entry.json.byteLength,
    errorFrame: (error, message, cursor) => ({ bytes: Buffer.from(errorJson(error, message, cursor)), binary: false }),
    control: (bytes) => ({ bytes, binary: false }),
    heartbeat: (resumeAt) => ({ bytes: Buffer.from(heartbeatJson(resumeAt)), binary: false }),
  };
}

/**
 * /stream: Server-Sent Events. An event is one message whose id is its time_us, so EventSource
 * resumes by itself (Last-Event-ID). Heartbeats and the last error are named events, so
 * `onmessage` sees events only; an error is named "close" (EventSource's "error" is its own).
 */
export function sseWire(): Wire {
  return {
    name: 'sse',
    zstd: false,
    closeFrame: false,
    prelude: Buffer.from(': contrail event stream\n\n'),
    // Event JSON never holds a raw newline (JSON escapes it), so one data line carries it.
    frame: framedOnce('SSE frame', (entry) => Buffer.concat([Buffer.from(`id: ${entry.timeUs}\ndata: `), entry.json, SSE_END])),
    frameBytes: (entry) => entry.json.byteLength,
    errorFrame: (error, message, cursor) => ({ bytes: Buffer.from(`event: close\ndata: ${errorJson(error, message, cursor)}\n\n`), binary: false }),
    control: (bytes) => ({ bytes, binary: false }),
    heartbeat: (resumeAt) => ({ bytes: Buffer.from(`event: heartbeat\nid: ${resumeAt}\ndata: ${heartbeatJson(resumeAt)}\n\n`), binary: false }),
  };
}

/** /stream.ndjson: one JSON value per line; the opening line, heartbeats and the last error are lines too, told apart by "type". */
export function ndjsonWire(): Wire {
  const line = (json: string) => ({ bytes: Buffer.from(json + '\n'), binary: false });
  return {
    name: 'ndjson',
    zstd: false,
    closeFrame: false,
    prelude: Buffer.from('{"type":"open"}\n'),
    frame: framedOnce('NDJSON line', (entry) => Buffer.concat([entry.json, NEWLINE])),
    frameBytes: (entry) => entry.json.byteLength,
    errorFrame: (error, message, cursor) => line(errorJson(error, message, cursor)),
    control: (bytes) => ({ bytes, binary: false }),
    heartbeat: (resumeAt) => line(heartbeatJson(resumeAt)),
  };
}

const SSE_END = Buffer.from('\n\n');
const NEWLINE = Buffer.from('\n');

function errorJson(error: string, message: string, cursor?: number): string {
  return JSON.stringify({ type: 'error', error, message, cursor });
}

function heartbeatJson(resumeAt: number): string {
  return `{"type":"heartbeat","time_us":${resumeAt}}`;
}

/** v2 with zstdDictionary: every frame, errors and #info included, is one zstd frame of the text frame. */
export function v2Wire(compressor: EventCompressor, zstd: boolean): Wire {
  const control = zstd ? (bytes: Buffer) => ({ bytes: compressor.compress(bytes), binary: true }) : (bytes: Buffer) => ({ bytes, binary: false });
  return {
    name: 'v2',
    zstd,
    closeFrame: true,
    frame: zstd ? framedOnce('v2 zstd frame', (entry) => compressor.compress(v2Frame(entry))) : v2Frame,
    frameBytes: v2FrameBytes,
    errorFrame: (error, message, cursor) => control(v2ErrorFrame(error, message, cursor)),
    control,
  };
}
