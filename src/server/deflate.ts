import { constants, deflateRawSync } from 'node:zlib';

/**
 * RFC 7692 permessage-deflate for the ws transport, compressed once per message and shared.
 * Both transports negotiate no context takeover, so a message's deflated bytes do not depend on
 * the socket: the ws transport deflates each event once (remembered against the event's bytes,
 * which every socket is handed) and writes the same frame to every socket that negotiated it.
 * uWS cannot send pre-compressed frames; there its shared compressor deflates per socket.
 */
const deflated = new WeakMap<Uint8Array, Buffer>();

/** The message's compressed payload (RFC 7692 §7.2.1: sync-flushed, its 4-byte tail removed). */
export function deflateMessage(data: Uint8Array): Buffer {
  let payload = deflated.get(data);
  if (!payload) {
    const flushed = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH });
    payload = flushed.subarray(0, flushed.byteLength - 4);
    deflated.set(data, payload);
  }
  return payload;
}

/**
 * The header of an unmasked, unfragmented server frame with RSV1 set (RFC 6455 §5.2 with RFC
 * 7692 §6: RSV1 marks a compressed message). ws has no public API for sending bytes that are
 * already compressed, so the ws transport writes this header and the payload itself.
 */
export function compressedFrameHeader(payloadBytes: number, binary: boolean): Buffer {
  const first = 0x80 | 0x40 | (binary ? 0x2 : 0x1); // FIN | RSV1 | opcode
  if (payloadBytes < 126) return Buffer.from([first, payloadBytes]);
  if (payloadBytes < 0x10000) {
    const header = Buffer.from([first, 126, 0, 0]);
    header.writeUInt16BE(payloadBytes, 2);
    return header;
  }
  const header = Buffer.alloc(10);
  header[0] = first;
  header[1] = 127;
  header.writeBigUInt64BE(BigInt(payloadBytes), 2);
  return header;
}
