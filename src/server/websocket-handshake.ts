/**
 * The handshake headers RFC 6455 §4.1 requires of a client, checked the same way on both transports.
 *
 * A client's Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455 §4.1): 24 characters ending
 * "==". contrail checks it before either transport sees the upgrade, so both answer alike: uWS
 * does not take a key of another length as an upgrade at all, and `ws` refuses a malformed one
 * with its own reply, which no metric would count.
 */
const KEY = /^[+/0-9A-Za-z]{22}==$/;

/** Why `key` cannot open a WebSocket, or undefined when it can. */
export function webSocketKeyFault(key: string | undefined): string | undefined {
  if (key === undefined) return 'a WebSocket upgrade needs a Sec-WebSocket-Key header';
  return KEY.test(key) ? undefined : 'Sec-WebSocket-Key must be 16 bytes in base64 (24 characters ending "=="; RFC 6455 section 4.1)';
}

/** The one protocol version RFC 6455 defines; earlier drafts' numbers are not spoken. */
export const WEBSOCKET_VERSION = '13';

/**
 * Why a Sec-WebSocket-Version cannot open a WebSocket here, or undefined when it can. Checked
 * before either transport for the same reason as the key: uWS opens a socket whatever the header
 * says, and `ws` refuses an unknown one with its own reply, which no metric would count.
 */
export function webSocketVersionFault(version: string | undefined): string | undefined {
  if (version?.trim() === WEBSOCKET_VERSION) return undefined;
  return `this server speaks WebSocket version ${WEBSOCKET_VERSION} only: send Sec-WebSocket-Version: ${WEBSOCKET_VERSION} (RFC 6455 section 4.2.2)`;
}

/** Whether a request asks for a WebSocket: its Connection header lists upgrade and its Upgrade header names websocket. */
export function asksForWebSocket(connection: string | undefined, upgrade: string | undefined): boolean {
  return /(^|,)\s*upgrade\s*(,|$)/i.test(connection ?? '') && /(^|,)\s*websocket\s*(,|$)/i.test(upgrade ?? '');
}
