/**
 * A WebSocket client that only counts the server's messages: it reads the upgrade answer, then
 * each frame's header, and skips the payload without copying or decoding it. A replaying client
 * in a benchmark receives hundreds of thousands of messages a second; `ws` would spend more CPU
 * parsing them than the server spends sending them, and on a small machine that CPU is taken
 * from the server being measured.
 */
import { connect, type Socket } from 'node:net';

/** Opens `url` (ws://host:port/path?query) and calls onMessage for every complete text or binary message. */
export function countingSocket(url: string, onMessage: () => void): Promise<Socket> {
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
          skip -= taken;
          at += taken;
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
        if (fin && opcode <= 2) onMessage();
        at += headerBytes;
        skip = length;
      }
      if (at < chunk.length) partial = Buffer.from(chunk.subarray(at));
    });
  });
}
