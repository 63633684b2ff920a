// A deliberately plain /subscribe client (the `ws` package, nothing else) that keeps every
// frame exactly as it arrived: the suite compares bytes, not just parsed objects.
import { WebSocket } from 'ws';
import { Decompressor } from 'zstd-napi';
import zstdBinding from 'zstd-napi/binding.js';

/** GET /dictionary: the zstd dictionary compressed subscribers need, and the ID it announces. */
export async function fetchDictionary(httpUrl) {
  const response = await fetch(`${httpUrl}/dictionary`);
  if (response.status !== 200) throw new Error(`GET /dictionary answered ${response.status}`);
  return { bytes: Buffer.from(await response.arrayBuffer()), announcedId: Number(response.headers.get('x-zstd-dictionary-id')) };
}

/** The /subscribe URL for a set of Jetstream parameters (arrays become repeated keys). */
export function subscribeUrl(wsUrl, params = {}) {
  const url = new URL('/subscribe', wsUrl);
  for (const [key, value] of Object.entries(params)) {
    for (const item of [value].flat()) if (item !== undefined) url.searchParams.append(key, String(item));
  }
  return url.toString();
}

export class RawSubscriber {
  /** Every frame: {text, binary, dictionaryId, event}, in arrival order. */
  frames = [];
  closed = undefined;
  #waiters = new Set();
  #decompressor;

  /**
   * @param {string} url a full /subscribe URL (see subscribeUrl)
   * @param {{dictionary?: Buffer, headers?: Record<string, string>}} [options] the dictionary to
   *   decode compressed frames with; extra upgrade headers (e.g. Socket-Encoding: zstd)
   */
  constructor(url, { dictionary, headers } = {}) {
    this.url = url;
    if (dictionary) {
      this.#decompressor = new Decompressor();
      this.#decompressor.loadDictionary(dictionary);
    }
    // ws's defaults, as an existing v1 client's: it offers permessage-deflate, which /subscribe
    // declines when zstd is asked.
    this.socket = new WebSocket(url, { headers });
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('open', resolve);
      this.socket.once('unexpected-response', (_request, response) => {
        reject(new Error(`${url}: HTTP ${response.statusCode} instead of a WebSocket upgrade`));
      });
      this.socket.once('error', reject);
    });
    this.opened.catch(() => {}); // observed through waitFor/opened by the caller
    this.socket.on('message', (data, binary) => this.#onFrame(data, binary));
    this.socket.on('error', (err) => (this.error = err));
    this.socket.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.#notify();
    });
  }

  get events() {
    return this.frames.map((frame) => frame.event);
  }

  #onFrame(data, binary) {
    let text;
    let dictionaryId;
    if (binary) {
      if (!this.#decompressor) throw new Error(`${this.url}: a binary frame on an uncompressed subscription`);
      dictionaryId = zstdBinding.getDictIDFromFrame(data);
      text = this.#decompressor.decompress(data).toString('utf8');
    } else {
      text = data.toString('utf8');
    }
    this.frames.push({ text, binary, dictionaryId, event: JSON.parse(text) });
    this.#notify();
  }

  #notify() {
    for (const waiter of this.#waiters) waiter();
  }

  /** Sends a JSON text message (options_update). */
  async send(message) {
    await this.opened;
    this.socket.send(JSON.stringify(message));
  }

  /**
   * Resolves with the frames up to and including the first whose event matches, waiting at most
   * timeoutMs for it; rejects early if the socket closes first.
   */
  waitFor(predicate, what, timeoutMs = 20_000) {
    return new Promise((resolve, reject) => {
      let timer;
      const check = () => {
        const index = this.frames.findIndex((frame) => predicate(frame.event));
        if (index >= 0) return finish(resolve, this.frames.slice(0, index + 1));
        if (this.closed) return finish(reject, new Error(`${this.url}: closed (${this.closed.code} ${this.closed.reason}) before ${what}; got ${this.frames.length} frames`));
        if (this.error && this.socket.readyState !== WebSocket.OPEN && this.socket.readyState !== WebSocket.CONNECTING) {
          return finish(reject, this.error);
        }
      };
      const finish = (fn, value) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        fn(value);
      };
      timer = setTimeout(() => finish(reject, new Error(`${this.url}: no ${what} within ${timeoutMs} ms; got ${this.frames.length} frames`)), timeoutMs);
      this.#waiters.add(check);
      this.opened.catch((err) => finish(reject, err));
      check();
    });
  }

  /** Closes (bounded: a socket that does not finish the closing handshake is terminated). */
  async close() {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    const done = new Promise((resolve) => this.socket.once('close', resolve));
    this.socket.close();
    const timer = setTimeout(() => this.socket.terminate(), 2_000);
    await done;
    clearTimeout(timer);
  }
}
