import { connect as netConnect, isIP, type NetConnectOpts, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

/**
 * The first bytes of the WebSocket message the upstream is sending now, read beside `ws` from the
 * same socket. `ws` must buffer a whole message before handing it on, so one above maxBytes can
 * only be refused by closing the socket — and a reconnect at the same cursor would meet the same
 * frame again, forever. Its first bytes carry its seq (DAG-CBOR puts `seq` among the first keys of
 * every body), so the client can resume *after* it instead. This reader, not ws, judges the size:
 * ws refuses a frame on its header, and its close makes the relay close before the payload (and
 * the seq) arrives when the header comes in a read of its own; so the client closes only once
 * the message's first bytes are in (onOversized), ws having buffered no more of it than they.
 *
 * It also says which message is in progress, if any (begun, its last frame not yet read whole): ws
 * shows nothing of a message until it completes, so a relay sending one as endless fragments, its
 * pongs answering every ping between them, looks alive while it delivers nothing.
 *
 * The frames begin after the 101's head; 1xx informational heads before it (100 Continue, 103 Early
 * Hints) are read past, as Node's HTTP client reads past them for ws.
 *
 * Only server-to-client framing is parsed (RFC 6455 §5.2: 2–14 byte headers, fragments, control
 * frames between fragments); payload bytes are kept as views of the socket's chunks, at most
 * PREFIX_BYTES of the current message, and nothing else is copied.
 */
export const PREFIX_BYTES = 64 * 1024;
/** A 1xx status line other than 101's (Switching Protocols, the upgrade itself). */
const INFORMATIONAL_STATUS_LINE = /^HTTP\/\d(?:\.\d)? 1(?!01)\d\d(?: |$)/;

interface Message {
  /** Its number among this connection's data messages, from 1. */
  number: number;
  prefix: Buffer[];
  prefixBytes: number;
  /** Payload bytes its frame headers announced so far. */
  announcedBytes: number;
}

export class MessagePrefix {
  #inHttpResponse = true;
  /** The response head being read: whole while its status line is not, then only its last 3 characters. */
  #httpHead = '';
  #httpStatusLine: string | undefined;
  /**
   * The bytes that followed the 101's head in its read. Node's HTTP client hands them to ws, which
   * puts them back on the socket (unshift), so they come again as the next read: read once, not twice.
   */
  #comingAgain: Buffer | undefined;
  #pending: Buffer = Buffer.alloc(0);
  /** Payload bytes left in the frame being read, and whether they belong to a data message. */
  #frameLeft = 0;
  #frameIsData = false;
  /** Whether the frame being read is a data message's last (its FIN bit). */
  #frameEndsMessage = false;
  #message: Message = { number: 0, prefix: [], prefixBytes: 0, announcedBytes: 0 };
  #inMessage = false;
  #oversized: Message | undefined;
  #oversizedTold = false;

  /**
   * Remembers the first message whose frames announce more than maxBytes, and calls onOversized
   * once its first bytes are in: enough to read its seq, or PREFIX_BYTES.
   */
  constructor(
    private readonly maxBytes: number,
    private readonly onOversized: () => void,
  ) {}

  /** A socket for ws's `createConnection` option that feeds this reader too. */
  connect(options: ConnectionOptions & { socketPath?: string }, secure: boolean): Socket {
    // What ws's own netConnect/tlsConnect do with the options it builds.
    const socket = secure
      ? tlsConnect({ ...options, path: undefined, servername: options.servername ?? (isIP(options.host ?? '') ? '' : options.host) })
      : netConnect({ ...options, path: options.socketPath } as NetConnectOpts);
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
    return socket;
  }

  /** The first message above maxBytes: its first bytes and its size as announced; undefined if none came. */
  get oversized(): { prefix: Buffer; announcedBytes: number } | undefined {
    const message = this.#oversized;
    return message && { prefix: Buffer.concat(message.prefix), announcedBytes: message.announcedBytes };
  }

  /** The data message begun and not yet complete: its number and the payload bytes its frames announced so far. */
  get messageInProgress(): { number: number; announcedBytes: number } | undefined {
    return this.#inMessage ? { number: this.#message.number, announcedBytes: this.#message.announcedBytes } : undefined;
  }

  #read(chunk: Buffer): void {
    let data = chunk;
    const again = this.#comingAgain;
    this.#comingAgain = undefined;
    if (again !== undefined && data.subarray(0, again.length).equals(again)) data = data.subarray(again.length);
    if (this.#inHttpResponse) {
      const frames = this.#pastResponseHeads(data);
      if (frames === undefined) return;
      data = frames;
      if (data.length > 0) this.#comingAgain = data;
    }
    while (data.length > 0) {
      if (this.#frameLeft > 0) {
        const take = Math.min(this.#frameLeft, data.length);
        if (this.#frameIsData) {
          this.#keep(data.subarray(0, take));
          this.#tellOversized();
        }
        this.#frameLeft -= take;
        if (this.#frameLeft === 0 && this.#frameEndsMessage) this.#inMessage = false;
        data = data.subarray(take);
        continue;
      }
      const buffered: Buffer = this.#pending.length > 0 ? Buffer.concat([this.#pending, data]) : data;
      const header = frameHeader(buffered);
      if (!header) {
        this.#pending = Buffer.from(buffered); // a header split across chunks: at most 13 bytes
        return;
      }
      this.#pending = Buffer.alloc(0);
      const { opcode, fin, headerBytes, payloadBytes } = header;
      this.#frameIsData = opcode < 8;
      this.#frameEndsMessage = this.#frameIsData && fin;
      if (opcode === 1 || opcode === 2) {
        this.#message = { number: this.#message.number + 1, prefix: [], prefixBytes: 0, announcedBytes: 0 };
        this.#inMessage = true;
      }
      if (this.#frameIsData) {
        this.#message.announcedBytes += payloadBytes;
        if (this.#message.announcedBytes > this.maxBytes) {
          this.#oversized ??= this.#message;
          this.#tellOversized(); // its earlier fragments may have brought its seq
        }
      }
      this.#frameLeft = payloadBytes;
      if (payloadBytes === 0 && this.#frameEndsMessage) this.#inMessage = false;
      data = buffered.subarray(headerBytes);
    }
  }

  /**
   * Reads the HTTP response heads up to the end of the 101's: the bytes after it (frames), or
   * undefined while it has not ended. A 1xx informational head before it (100 Continue, 103 Early
   * Hints) is read past, as Node's HTTP client reads past it for ws.
   */
  #pastResponseHeads(chunk: Buffer): Buffer | undefined {
    let data = chunk;
    for (;;) {
      const text = this.#httpHead + data.toString('latin1');
      if (this.#httpStatusLine === undefined) {
        const lineEnd = text.indexOf('\r\n');
        if (lineEnd >= 0) this.#httpStatusLine = text.slice(0, lineEnd);
      }
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) {
        this.#httpHead = this.#httpStatusLine === undefined ? text : text.slice(-3);
        return undefined;
      }
      const after = data.subarray(end + 4 - this.#httpHead.length);
      const informational = INFORMATIONAL_STATUS_LINE.test(this.#httpStatusLine ?? '');
      this.#httpHead = '';
      this.#httpStatusLine = undefined;
      if (!informational) {
        this.#inHttpResponse = false;
        return after;
      }
      data = after;
    }
  }

  #tellOversized(): void {
    const message = this.#oversized;
    if (this.#oversizedTold || message === undefined) return;
    if (message.prefixBytes < PREFIX_BYTES && seqFromPrefix(Buffer.concat(message.prefix)) === undefined) return;
    this.#oversizedTold = true;
    this.onOversized();
  }

  #keep(payload: Buffer): void {
    const message = this.#message;
    if (message.prefixBytes >= PREFIX_BYTES) return;
    const kept = payload.subarray(0, PREFIX_BYTES - message.prefixBytes);
    message.prefix.push(kept);
    message.prefixBytes += kept.length;
  }
}

function frameHeader(bytes: Buffer): { opcode: number; fin: boolean; headerBytes: number; payloadBytes: number } | undefined {
  const first = bytes[0];
  const second = bytes[1];
  if (first === undefined || second === undefined) return undefined;
  const opcode = first & 0x0f;
  const masked = (second & 0x80) !== 0;
  let length = second & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (bytes.length < 4) return undefined;
    length = bytes.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (bytes.length < 10) return undefined;
    length = Number(bytes.readBigUInt64BE(2));
    offset = 10;
  }
  if (masked) offset += 4;
  if (bytes.length < offset) return undefined;
  return { opcode, fin: (first & 0x80) !== 0, headerBytes: offset, payloadBytes: length };
}

/**
 * The `seq` of a subscribeRepos frame from its first bytes: walks the header map and the body map's
 * entries, skipping values, until the key `seq`. undefined when the prefix ends first or the bytes
 * are not such a frame.
 */
export function seqFromPrefix(bytes: Uint8Array): number | undefined {
  const reader = { offset: 0 };
  try {
    skipItem(bytes, reader); // header {op, t}
    const body = readHead(bytes, reader);
    if (body.major !== 5) return undefined;
    for (let i = 0; i < body.argument; i++) {
      const key = readHead(bytes, reader);
      if (key.major !== 3) return undefined;
      const name = new TextDecoder().decode(take(bytes, reader, key.argument));
      if (name === 'seq') {
        const value = readHead(bytes, reader);
        return value.major === 0 ? value.argument : undefined;
      }
      skipItem(bytes, reader);
    }
  } catch {
    // ran past the prefix
  }
  return undefined;
}

function readHead(bytes: Uint8Array, reader: { offset: number }): { major: number; argument: number } {
  const initial = takeByte(bytes, reader);
  const major = initial >> 5;
  const info = initial & 0x1f;
  if (info < 24) return { major, argument: info };
  const size = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
  if (size === undefined) throw new Error('indefinite length: not DAG-CBOR');
  let argument = 0;
  for (const byte of take(bytes, reader, size)) argument = argument * 256 + byte;
  return { major, argument };
}

function skipItem(bytes: Uint8Array, reader: { offset: number }): void {
  const { major, argument } = readHead(bytes, reader);
  if (major === 2 || major === 3) take(bytes, reader, argument);
  else if (major === 4) for (let i = 0; i < argument; i++) skipItem(bytes, reader);
  else if (major === 5) for (let i = 0; i < argument * 2; i++) skipItem(bytes, reader);
  else if (major === 6) skipItem(bytes, reader);
}

function takeByte(bytes: Uint8Array, reader: { offset: number }): number {
  const byte = bytes[reader.offset];
  if (byte === undefined) throw new Error('past the prefix');
  reader.offset++;
  return byte;
}

function take(bytes: Uint8Array, reader: { offset: number }, count: number): Uint8Array {
  if (reader.offset + count > bytes.length) throw new Error('past the prefix');
  const slice = bytes.subarray(reader.offset, reader.offset + count);
  reader.offset += count;
  return slice;
}
