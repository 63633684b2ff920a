/**
 * A relay that sends a frame too large for contrail's socket, for the tests of how contrail skips
 * it by resuming after its seq (README, the upstream connection). Its first connection gets the
 * #commit of seq 1, then the oversized frame of seq 2, written on the raw socket beside ws as a
 * relay gone wrong would (ws itself would refuse to send it); a connection that resumes after it
 * (cursor 2 or more) gets seq 3. Every connection's cursor is kept, in order.
 */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { SOCKET_MAX_PAYLOAD } from '../../src/upstream/firehose.ts';
import { alicePostCommit } from './subscribe-client.ts';

/** An unmasked binary frame's header (FIN, binary, a 64-bit length) announcing `length` bytes. */
export function frameHeader(length: bigint): Buffer {
  const header = Buffer.alloc(10);
  header[0] = 0x82; // FIN, binary
  header[1] = 127; // 64-bit length follows
  header.writeBigUInt64BE(length, 2);
  return header;
}

/** More than the socket reads in one message: the length of a frame contrail must skip. */
export const OVERSIZED_LENGTH = BigInt(SOCKET_MAX_PAYLOAD + 1024);

/** A frame header announcing OVERSIZED_LENGTH bytes, then the first bytes of the #commit of `seq`, its payload as it begins. */
export function oversizedFrameStart(seq: number): Buffer {
  return Buffer.concat([frameHeader(OVERSIZED_LENGTH), alicePostCommit(seq)]);
}

export interface OversizedFrameRelay {
  /** ws://127.0.0.1:<port> */
  url: string;
  /** Each connection's `cursor` query value (null: none), in the order they came. */
  cursors: Array<string | null>;
  close(): Promise<void>;
}

/** Starts the relay; `writeOversized` writes the oversized frame of seq 2 on a first connection's raw socket, as and when the test wants it. */
export async function startOversizedFrameRelay(writeOversized: (raw: Socket, socket: WebSocket) => void): Promise<OversizedFrameRelay> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const cursors: Array<string | null> = [];
  server.on('connection', (socket: WebSocket & { _socket?: Socket }, request) => {
    const cursor = new URL(request.url!, 'http://relay').searchParams.get('cursor');
    cursors.push(cursor);
    socket.on('error', () => socket.terminate());
    if (cursor !== null && Number(cursor) >= 2) {
      socket.send(alicePostCommit(3));
      return;
    }
    if (cursor === null) socket.send(alicePostCommit(1));
    writeOversized(socket._socket!, socket);
  });
  return {
    url: `ws://127.0.0.1:${(server.address() as { port: number }).port}`,
    cursors,
    close: async () => {
      for (const socket of server.clients) socket.terminate();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
