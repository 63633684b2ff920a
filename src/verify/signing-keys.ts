import { hash } from 'node:crypto';
import { P256PublicKey, parseDidKey } from '@atcute/crypto';
import secp256k1 from 'secp256k1';

/** One imported key: checks an atproto signature (low-S, compact r‖s) over data. */
type Verify = (sig: Uint8Array, data: Uint8Array) => boolean | Promise<boolean>;

/**
 * did:key strings → imported public keys, most recently used kept. Importing costs more than
 * verifying (a key object is built from the compressed point), and a busy repo's key is used
 * for every one of its commits.
 *
 * K-256 (the key nearly every PDS signs with) goes through libsecp256k1, bitcoin-core's C library,
 * as a native addon (the `secp256k1` package, prebuilt for x64 Linux; elsewhere it falls back to
 * pure JavaScript, which also refuses high-S signatures), given the point uncompressed once: in
 * bench/verify a check takes under a quarter of the CPU time of the same library compiled to
 * WebAssembly (tiny-secp256k1), which took half that of OpenSSL's generic-curve code (what
 * @atcute/crypto uses on Node). P-256 stays with @atcute/crypto, where OpenSSL's own P-256 code is fast.
 */
export class SigningKeys {
  readonly #keys = new Map<string, Promise<Verify>>();

  constructor(private readonly maxKeys = 50_000) {}

  /** Verifies an atproto signature (low-S, compact form) over `data` with the did:key. */
  async verify(didKey: string, sig: Uint8Array, data: Uint8Array): Promise<boolean> {
    let key = this.#keys.get(didKey);
    if (key) {
      this.#keys.delete(didKey);
    } else {
      key = importKey(didKey);
      key.catch(() => this.#keys.delete(didKey));
    }
    this.#keys.set(didKey, key);
    if (this.#keys.size > this.maxKeys) this.#keys.delete(this.#keys.keys().next().value!);
    return (await key)(sig, data);
  }
}

async function importKey(didKey: string): Promise<Verify> {
  const found = parseDidKey(didKey);
  if (found.type === 'p256') {
    const key = await P256PublicKey.importRaw(found.publicKeyBytes);
    return (sig, data) => key.verify(sig, data);
  }
  let point: Uint8Array;
  try {
    point = secp256k1.publicKeyConvert(found.publicKeyBytes, false);
  } catch {
    throw new Error(`${didKey} is not a point on secp256k1`);
  }
  return (sig, data) => {
    // libsecp256k1 accepts only low-S signatures, as atproto requires; a malformed one (r or s
    // past the order, a wrong length) throws, and is just as invalid.
    try {
      return secp256k1.ecdsaVerify(sig, hash('sha256', data, 'buffer') as unknown as Uint8Array, point);
    } catch {
      return false;
    }
  };
}
