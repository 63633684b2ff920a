import { hash } from 'node:crypto';
import { fromString as cidFromString } from '@atcute/cid';
import type { BlockMap, ReadonlyBlockStore } from '@atcute/mst';
import type { CarSlice } from '../upstream/index.ts';

/**
 * @atcute/mst's block store interface over a commit's CAR slice. Every block is hashed and
 * compared with the CID it is asked for: the proof's nodes come from the relay, and a node
 * whose bytes are not what its CID says would let a relay prove anything.
 */
export class CarBlockStore implements ReadonlyBlockStore {
  constructor(private readonly car: CarSlice) {}

  async get(cid: string): Promise<Uint8Array<ArrayBuffer> | null> {
    return this.getSync(cid);
  }

  async getMany(cids: string[]): Promise<{ found: BlockMap; missing: string[] }> {
    const found: BlockMap = new Map();
    const missing: string[] = [];
    for (const cid of cids) {
      const bytes = this.getSync(cid);
      if (bytes) found.set(cid, bytes);
      else missing.push(cid);
    }
    return { found, missing };
  }

  async has(cid: string): Promise<boolean> {
    return this.getSync(cid) !== null;
  }

  getSync(cid: string): Uint8Array<ArrayBuffer> | null {
    const parsed = cidFromString(cid);
    const bytes = this.car.find(parsed.bytes);
    if (!bytes) return null;
    const digest = hash('sha256', bytes, 'buffer') as unknown as Buffer;
    if (!digest.equals(parsed.digest.contents)) return null;
    return bytes as Uint8Array<ArrayBuffer>;
  }
}
