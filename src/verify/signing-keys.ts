import { P256PublicKey, Secp256k1PublicKey, parseDidKey, type PublicKey } from '@atcute/crypto';

/**
 * did:key strings → imported public keys, most recently used kept. Importing costs more than
 * verifying (a key object is built from the compressed point), and a busy repo's key is used
 * for every one of its commits.
 */
export class SigningKeys {
  readonly #keys = new Map<string, Promise<PublicKey>>();

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
    return (await key).verify(sig, data);
  }
}

async function importKey(didKey: string): Promise<PublicKey> {
  const found = parseDidKey(didKey);
  return found.type === 'p256' ? P256PublicKey.importRaw(found.publicKeyBytes) : Secp256k1PublicKey.importRaw(found.publicKeyBytes);
}
