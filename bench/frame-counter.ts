/**
 * A WebSocket client that only counts the server's messages: it reads the upgrade answer, then
 * each frame's header, and skips the payload without copying or decoding it. A replaying client
 * in a benchmark receives hundreds of thousands of messages a second; `ws` would spend more CPU
 * parsing them than the server spends sending them, and on a small machine that CPU is taken
 * from the server being measured. With `headBytes`, each message's first bytes are handed over
 * too (a latency sample reads time_us there), still without validating or joining the rest.
 */
import { connect, type Socket } from 'node:net';

/**
 * Opens `url` (ws://host:port/path?query) and calls onMessage for every complete text or binary
 * message (an unfragmented one: contrail sends no other), with its first `headBytes` bytes and
 * whether it is binary when headBytes is given.
 */
export function countingSocket(url: string, onMessage: (head: Buffer | undefined, binary: boolean) => void, headBytes = 0): Promise<Socket> {
  const { hostname, port, pathname, search } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.setNoDelay(true);
    let upgraded = false;
    let head = Buffer.alloc(0);
    /** Payload bytes of the current frame still to skip. */
    let skip = 0;
    /** Header bytes carried over from the previous chunk. */
    let partial = Buffer.alloc(0);
    /** With headBytes: the current message's first bytes gathered so far, how many more are wanted, and whether it is binary. */
    let messageHead: Buffer[] = [];
    let headWanted = 0;
    let binary = false;
    socket.on('connect', () => {
      socket.write(
        `GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          // A key is 16 bytes in base64: contrail refuses any other with a 400.
          `Sec-WebSocket-Key: ${Buffer.from('contrail-bench16').toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      if (!upgraded) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const status = head.toString('latin1', 0, head.indexOf('\r\n'));
        if (!/^HTTP\/1\.1 101/.test(status)) return reject(new Error(`${url}: ${status}`));
        upgraded = true;
        resolve(socket);
        chunk = head.subarray(end + 4);
      }
      let at = 0;
      if (partial.length > 0) {
        chunk = Buffer.concat([partial, chunk]);
        partial = Buffer.alloc(0);
      }
      while (at < chunk.length) {
        if (skip > 0) {
          const taken = Math.min(skip, chunk.length - at);
          if (headWanted > 0) {
            const kept = Math.min(headWanted, taken);
            messageHead.push(chunk.subarray(at, at + kept));
            headWanted -= kept;
          }
          skip -= taken;
          at += taken;
          // Handed over once the whole message is in, as a WebSocket library would.
          if (skip === 0 && messageHead.length > 0) {
            onMessage(messageHead.length === 1 ? messageHead[0] : Buffer.concat(messageHead), binary);
            messageHead = [];
          }
          continue;
        }
        // A header: 2 bytes, then 2 or 8 bytes of length (server frames are never masked).
        if (chunk.length - at < 2) break;
        const first = chunk[at]!;
        const short = chunk[at + 1]! & 0x7f;
        const headerBytes = short === 126 ? 4 : short === 127 ? 10 : 2;
        if (chunk.length - at < headerBytes) break;
        const length = short === 126 ? chunk.readUInt16BE(at + 2) : short === 127 ? Number(chunk.readBigUInt64BE(at + 2)) : short;
        const opcode = first & 0x0f;
        const fin = (first & 0x80) !== 0;
        // A message ends with a FIN frame: text, binary, or the last continuation.
        if (fin && opcode <= 2) {
          if (headBytes > 0 && length > 0) {
            headWanted = Math.min(headBytes, length);
            binary = opcode === 2;
          } else {
            onMessage(undefined, opcode === 2);
          }
        }
        at += headerBytes;
        skip = length;
      }
      if (at < chunk.length) partial = Buffer.from(chunk.subarray(at));
    });
  });
}
