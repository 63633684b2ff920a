/**
 * What one NATS client published to a JetStream subject, and what the server answered to each
 * publish, read off the wire as it crosses a HoldingProxy (the NATS text protocol: PUB/HPUB from
 * the client, MSG/HMSG to its reply inbox from the server). It sees what the server decided,
 * whatever the client made of it — also the answer to a publish the client stopped waiting for.
 */
import type { HoldingProxy, ProxySide } from './holding-proxy.ts';

/** The server's answer to a publish: the stream seq it was stored at, or why it was refused. */
export type PublishAnswer = { stored: number } | { refused: string };

export interface WatchedPublish {
  /** The reply inbox the answer goes to. */
  reply: string;
  answer?: PublishAnswer;
}

/** For each operation with a payload: how many arguments it has when it names a reply subject, and where that is. */
const WITH_PAYLOAD: Record<string, { argsWithReply: number; replyAt: number; headers: boolean }> = {
  PUB: { argsWithReply: 3, replyAt: 1, headers: false },
  HPUB: { argsWithReply: 4, replyAt: 1, headers: true },
  MSG: { argsWithReply: 4, replyAt: 2, headers: false },
  HMSG: { argsWithReply: 5, replyAt: 2, headers: true },
};

interface ProtocolMessage {
  op: string;
  subject: string;
  reply: string | undefined;
  /** The payload without headers. */
  body: Buffer;
}

/** Cuts one direction of one connection into protocol messages, across chunk boundaries. */
class ProtocolReader {
  #pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onMessage: (message: ProtocolMessage) => void) {}

  push(chunk: Buffer): void {
    const buffer = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    let at = 0;
    for (;;) {
      const lineEnd = buffer.indexOf('\r\n', at);
      if (lineEnd < 0) break;
      const [op = '', ...args] = buffer.toString('latin1', at, lineEnd).split(' ').filter((word) => word !== '');
      const form = WITH_PAYLOAD[op.toUpperCase()];
      if (!form) {
        at = lineEnd + 2;
        continue;
      }
      const size = Number(args.at(-1));
      const end = lineEnd + 2 + size + 2;
      if (buffer.length < end) break;
      const headerBytes = form.headers ? Number(args.at(-2)) : 0;
      this.onMessage({
        op: op.toUpperCase(),
        subject: args[0]!,
        reply: args.length === form.argsWithReply ? args[form.replyAt] : undefined,
        body: buffer.subarray(lineEnd + 2 + headerBytes, lineEnd + 2 + size),
      });
      at = end;
    }
    this.#pending = buffer.subarray(at);
  }
}

function answerOf(body: Buffer): PublishAnswer {
  try {
    const answer = JSON.parse(body.toString('utf8')) as { seq?: number; error?: { description?: string } };
    if (answer.error) return { refused: answer.error.description ?? JSON.stringify(answer.error) };
    if (typeof answer.seq === 'number') return { stored: answer.seq };
  } catch {
    // not JSON: a status message (503 no responders) has an empty body
  }
  return { refused: `no JetStream answer (${JSON.stringify(body.toString('utf8'))})` };
}

export class JetStreamPublishWatch {
  readonly publishes: WatchedPublish[] = [];
  readonly #byReply = new Map<string, WatchedPublish>();
  readonly #readers = new Map<string, ProtocolReader>();

  /** Watches what crosses `proxy` from now on: publishes to `subject`, and their answers. */
  constructor(proxy: HoldingProxy, subject: string) {
    proxy.watch((connection, from, chunk) => this.#reader(connection, from, subject).push(chunk));
  }

  #reader(connection: number, from: ProxySide, subject: string): ProtocolReader {
    const key = `${connection} ${from}`;
    let reader = this.#readers.get(key);
    if (!reader) {
      reader = new ProtocolReader(from === 'client' ? (message) => this.#published(message, subject) : (message) => this.#answered(message));
      this.#readers.set(key, reader);
    }
    return reader;
  }

  #published(message: ProtocolMessage, subject: string): void {
    if (message.subject !== subject || message.reply === undefined) return;
    const publish: WatchedPublish = { reply: message.reply };
    this.publishes.push(publish);
    this.#byReply.set(message.reply, publish);
  }

  #answered(message: ProtocolMessage): void {
    const publish = this.#byReply.get(message.subject);
    if (publish && !publish.answer) publish.answer = answerOf(message.body);
  }
}
