// atproto identifier syntax (https://atproto.com/specs/did, /handle, /nsid, /record-key, /tid).
// Checked against the official interop vectors in test/syntax.test.ts.

const DID = /^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$/;
const DID_MAX_LENGTH = 2048;

const HANDLE = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
const HANDLE_MAX_LENGTH = 253;

const NSID =
  /^[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+\.[a-zA-Z][a-zA-Z0-9]{0,62}$/;
const NSID_MAX_LENGTH = 317;

const RECORD_KEY = /^[a-zA-Z0-9_~.:-]{1,512}$/;
const TID = /^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$/;

export function isDid(value: unknown): value is string {
  return typeof value === 'string' && value.length <= DID_MAX_LENGTH && DID.test(value);
}

export function isHandle(value: unknown): value is string {
  return typeof value === 'string' && value.length <= HANDLE_MAX_LENGTH && HANDLE.test(value);
}

export function isNsid(value: unknown): value is string {
  return typeof value === 'string' && value.length <= NSID_MAX_LENGTH && NSID.test(value);
}

export function isRecordKey(value: unknown): value is string {
  return typeof value === 'string' && value !== '.' && value !== '..' && RECORD_KEY.test(value);
}

export function isTid(value: unknown): value is string {
  return typeof value === 'string' && TID.test(value);
}

const TID_ALPHABET = '234567abcdefghijklmnopqrstuvwxyz';

/** A TID's timestamp: its first 53 bits, microseconds since the epoch. */
export function tidMicros(tid: string): number {
  let value = 0n;
  for (const char of tid) value = (value << 5n) | BigInt(TID_ALPHABET.indexOf(char));
  return Number(value >> 10n);
}

/** How far a repo's rev may run ahead of our clock (clock skew), as relays allow. */
export const FUTURE_REV_TOLERANCE_MS = 5 * 60_000;
