import { getPublicKeyFromDidController } from '@atcute/crypto';
import { base58btc } from 'multiformats/bases/base58';
import { isHandle } from '../atproto/index.ts';

/** What atproto needs from a DID document. */
export interface AtprotoIdentity {
  did: string;
  /** The repo signing key (verification method `#atproto`) as a `did:key:z…` string; undefined if the document has none. */
  signingKey: string | undefined;
  /** The PDS URL (service `#atproto_pds`); undefined if the document has none. */
  pdsEndpoint: string | undefined;
  /** The handle the document claims (first `at://` alias, if it is a handle), not verified against DNS. */
  handle: string | undefined;
  /** When the document was fetched (ms since the epoch). */
  fetchedAt: number;
}

export class BadDocumentError extends Error {}

interface VerificationMethod {
  id?: unknown;
  type?: unknown;
  publicKeyMultibase?: unknown;
}

interface Service {
  id?: unknown;
  type?: unknown;
  serviceEndpoint?: unknown;
}

/**
 * Reads the atproto parts of a DID document (https://atproto.com/specs/did). The key and the
 * service are found by their fragment (`#atproto`, `#atproto_pds`), relative or absolute, as
 * the spec says; legacy key types (EcdsaSecp256k1VerificationKey2019, …) are normalised to
 * did:key so one string identifies the key whatever the document's style.
 */
export function identityFromDocument(did: string, document: unknown, fetchedAt: number): AtprotoIdentity {
  if (typeof document !== 'object' || document === null) throw new BadDocumentError('the DID document is not a JSON object');
  const doc = document as { id?: unknown; verificationMethod?: unknown; service?: unknown; alsoKnownAs?: unknown };
  if (doc.id !== did) throw new BadDocumentError(`the DID document is for ${JSON.stringify(doc.id)}, not ${did}`);
  const isFragment = (id: unknown, fragment: string) => id === fragment || id === `${did}${fragment}`;

  let signingKey: string | undefined;
  const method = arrayOf<VerificationMethod>(doc.verificationMethod).find((m) => isFragment(m?.id, '#atproto'));
  if (method && typeof method.type === 'string' && typeof method.publicKeyMultibase === 'string') {
    signingKey = didKeyOf(method.type, method.publicKeyMultibase);
  }

  let pdsEndpoint: string | undefined;
  const service = arrayOf<Service>(doc.service).find((s) => isFragment(s?.id, '#atproto_pds'));
  if (service && service.type === 'AtprotoPersonalDataServer' && typeof service.serviceEndpoint === 'string') {
    pdsEndpoint = endpointOf(service.serviceEndpoint);
  }

  // Anything else an alias holds (a document may be 64 KiB) is not a handle, and is not kept.
  const alias = arrayOf<unknown>(doc.alsoKnownAs).find((a): a is string => typeof a === 'string' && a.startsWith('at://'));
  const handle = alias?.slice('at://'.length);
  return { did, signingKey, pdsEndpoint, handle: isHandle(handle) ? handle : undefined, fetchedAt };
}

/** Multicodec prefixes of did:key (https://atproto.com/specs/cryptography#public-key-encoding). */
const MULTICODEC = { p256: [0x80, 0x24], secp256k1: [0xe7, 0x01] } as const;

function didKeyOf(type: string, publicKeyMultibase: string): string {
  let found;
  try {
    found = getPublicKeyFromDidController({ type, publicKeyMultibase });
  } catch (err) {
    throw new BadDocumentError(`the #atproto key is unusable: ${(err as Error).message}`);
  }
  // Legacy key types carry the bare point, possibly uncompressed; did:key wants it compressed, as
  // Multikey carries it (bytes after it would be kept, up to the document's size, in the cache).
  let point = found.publicKeyBytes;
  const lastByte = point[64];
  if (type !== 'Multikey' && point.length === 65 && point[0] === 0x04 && lastByte !== undefined) {
    point = Uint8Array.from([0x02 | (lastByte & 1), ...point.subarray(1, 33)]);
  } else if (point.length !== 33 || (point[0] !== 0x02 && point[0] !== 0x03)) {
    throw new BadDocumentError(`the #atproto key is not an elliptic-curve point (${point.length} bytes)`);
  }
  if (type === 'Multikey') return `did:key:${publicKeyMultibase}`;
  return `did:key:${base58btc.encode(Uint8Array.from([...MULTICODEC[found.type], ...point]))}`;
}

/** The longest name DNS can resolve. */
const MAX_HOST_NAME_LENGTH = 253;

function endpointOf(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BadDocumentError(`the #atproto_pds endpoint ${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new BadDocumentError(`the #atproto_pds endpoint ${JSON.stringify(text)} is not http(s)`);
  if (url.hostname.length > MAX_HOST_NAME_LENGTH) {
    throw new BadDocumentError(`the #atproto_pds endpoint ${JSON.stringify(text.slice(0, 64))}… is not a host name: ${url.hostname.length} characters, past DNS's ${MAX_HOST_NAME_LENGTH}`);
  }
  return url.origin;
}

function arrayOf<T>(value: unknown): T[] {
  return Array.isArray(value) ? (value as T[]) : [];
}
