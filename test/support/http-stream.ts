/**
 * A recording client for contrail's HTTP streams: /stream (Server-Sent Events, parsed by
 * eventsource-parser) and /stream.ndjson (one JSON value per line), over node:http.
 */
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { createParser } from 'eventsource-parser';
import { waitUntil } from './subscribe-client.ts';

export interface StreamMessage {
  /** The SSE event name (undefined = "message", an event); NDJSON lines have none. */
  event?: string;
  /** The SSE id; NDJSON lines have none. */
  id?: string;
  data: string;
}

export class HttpStream {
  static readonly #open = new Set<HttpStream>();
  readonly messages: StreamMessage[] = [];
  /** Resolves when the server ends the response (or the connection drops). */
  readonly ended: Promise<void>;
  #request: ClientRequest;
  #response: IncomingMessage;

  private constructor(req: ClientRequest, res: IncomingMessage, sse: boolean) {
    this.#request = req;
    this.#response = res;
    res.setEncoding('utf8');
    if (sse) {
      const parser = createParser({ onEvent: (message) => this.messages.push(message) });
      res.on('data', (chunk: string) => parser.feed(chunk));
    } else {
      let partial = '';
      res.on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop()!;
        for (const line of lines) this.messages.push({ data: line });
      });
    }
    HttpStream.#open.add(this);
    this.ended = new Promise((resolve) => {
      const done = () => {
        HttpStream.#open.delete(this);
        resolve();
      };
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
  }

  /** Opens a stream; rejects with the status and body if the server answers anything but 200. */
  static open(port: number, path: '/stream' | '/stream.ndjson', query = '', headers: Record<string, string> = {}): Promise<HttpStream> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: `${path}${query ? `?${query}` : ''}`, headers, agent: false });
      req.on('response', (res) => {
        if (res.statusCode === 200) {
          resolve(new HttpStream(req, res, path === '/stream'));
          return;
        }
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => reject(new StreamRefused(res.statusCode ?? 0, body)));
      });
      req.on('error', reject);
      req.end();
    });
  }

  static closeAll(): void {
    for (const stream of HttpStream.#open) stream.close();
  }

  get headers(): IncomingMessage['headers'] {
    return this.#response.headers;
  }

  /** The TCP socket: pausing it makes a reader that stops reading. */
  get socket(): Socket {
    return this.#response.socket;
  }

  /** The messages that are events (SSE "message" events; NDJSON lines with a kind). */
  get events(): string[] {
    return this.messages.filter((m) => m.event === undefined && !m.data.startsWith('{"type"')).map((m) => m.data);
  }

  async waitForEvents(count: number, timeoutMs?: number): Promise<void> {
    await waitUntil(() => this.events.length >= count, `${count} events on the stream (have ${this.events.length})`, timeoutMs);
  }

  async waitFor(predicate: (message: StreamMessage) => boolean, what: string, timeoutMs?: number): Promise<StreamMessage> {
    await waitUntil(() => this.messages.some(predicate), what, timeoutMs);
    return this.messages.find(predicate)!;
  }

  close(): void {
    this.#request.destroy();
    HttpStream.#open.delete(this);
  }
}

export class StreamRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`HTTP ${status}: ${body.trim()}`);
  }
}
