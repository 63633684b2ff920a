import { createHash } from 'node:crypto';

/**
 * zstd dictionaries whose content clients already hold under their ID: Jetstream v1's, which
 * Jetstream's clients embed, and the one contrail ships (dictionaries/contrail-v1.zstd-dict).
 * Frames are made with the file and decoded with the client's copy, so a file that carries one of
 * these IDs but is truncated or altered would be advertised under that ID and decode wrongly or
 * not at all. Only each one's SHA-256 is kept here, never its bytes.
 */
const KNOWN_DICTIONARIES = new Map<number, { name: string; sha256: string }>([
  [1612007021, { name: "Jetstream v1's dictionary", sha256: 'b8d77b46933aceecbdd5275a01241efc985c970c78162b8150cf67a26522f70c' }],
  [1668247156, { name: "contrail's bundled dictionaries/contrail-v1.zstd-dict", sha256: 'a44abd546ca9aedea873b7fac5a95d40cfd2fa2ebc03bd0a7ce214f2b1ddd98d' }],
]);

/** Why `bytes`, a dictionary with zstd dictionary ID `id`, must not be used under that ID; undefined if nothing says so. */
export function knownDictionaryMismatch(id: number, bytes: Uint8Array): string | undefined {
  const known = KNOWN_DICTIONARIES.get(id);
  if (!known) return undefined;
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 === known.sha256) return undefined;
  return `has the dictionary ID ${id} of ${known.name}, but not its content (${bytes.length} bytes, sha256 ${sha256}; that one's is ${known.sha256}): truncated or altered? Clients holding the real one would decode its frames wrongly; give the whole file`;
}
