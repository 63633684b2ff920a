import { open as openLmdb } from 'lmdb';

/**
 * Flips a byte in the middle of the zstd frame of `collection`'s partition of the block ending at
 * `blockEnd`, in the closed buffer in `dataDir`, as a bad sector would: the frame then fails its
 * checksum (a DamagedBlockError for every read of it).
 */
export async function damagePartition(dataDir: string, blockEnd: number, collection: string): Promise<void> {
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  try {
    const blocks = raw.openDB<Buffer, [number, number]>({ name: 'blocks', encoding: 'binary' });
    const part = [...raw.openDB<number, string>({ name: 'partitions' }).getRange()].find((p) => p.key === collection)?.value;
    if (part === undefined) throw new Error(`the buffer has no partition of ${collection}`);
    const stored = blocks.getBinary([blockEnd, part]);
    if (!stored) throw new Error(`no block ends at time_us ${blockEnd} with a partition of ${collection}`);
    const frame = Buffer.from(stored);
    frame[frame.length >> 1]! ^= 0x5a;
    blocks.putSync([blockEnd, part], frame);
  } finally {
    await raw.close();
  }
}
