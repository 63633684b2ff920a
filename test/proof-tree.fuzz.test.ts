/**
 * The verify stage's proof tree (src/verify/proof-tree.ts) against @atcute/mst, whose tree
 * operations it repeats synchronously: on random trees, built and changed by the library's
 * NodeWrangler, each find, put and delete must give the library's answer and new root, and
 * read exactly the blocks the library reads — so a proof the library finds incomplete is
 * incomplete here too, and no more is asked of a sender than the library would.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CidLinkWrapper } from '@atcute/cid';
import { MemoryBlockStore, MSTNode, NodeStore, NodeWalker, NodeWrangler, OverlayBlockStore, type BlockMap, type ReadonlyBlockStore } from '@atcute/mst';
import { CID } from 'multiformats/cid';
import { CarSlice } from '../src/upstream/index.ts';
import { KeyHeights } from '../src/verify/mst-node.ts';
import { ProofTree } from '../src/verify/proof-tree.ts';
import { carOf } from './support/frames.ts';
import { mulberry32 } from './support/synthetic.ts';

const COLLECTIONS = ['app.bsky.feed.like', 'app.bsky.feed.post', 'app.bsky.graph.follow', 'com.example.z'];
const RKEY_CHARS = [...'234567abcdefghijklmnopqrstuvwxyz'];
/** A few record CIDs (the values), so puts both change and keep a value. */
const LEAVES = ['bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm', 'bafyreigsurgdk3bfyh6ehghe5qdsc45qct6ic2lpn4gvxsrjvsaoojxtdy', 'bafyreidlgvzdjo75kafjtgrdg7abz37eadzdlb5jtzyqinphkizncuqmje'].map(
  (cid) => new CidLinkWrapper(CID.parse(cid).bytes),
);

/** The library's block store, recording which blocks it is asked for. */
class RecordingStore implements ReadonlyBlockStore {
  readonly read = new Set<string>();
  constructor(private readonly blocks: MemoryBlockStore) {}
  async get(cid: string) {
    this.read.add(cid);
    return this.blocks.get(cid);
  }
  async getMany(cids: string[]): Promise<{ found: BlockMap; missing: string[] }> {
    for (const cid of cids) this.read.add(cid);
    return this.blocks.getMany(cids);
  }
  async has(cid: string) {
    return this.blocks.has(cid);
  }
}

/** A real CAR slice of the blocks, recording which ones the proof tree looks up. */
class RecordingCar extends CarSlice {
  readonly read = new Set<string>();
  override find(cid: Uint8Array) {
    this.read.add(new CidLinkWrapper(cid).$link);
    return super.find(cid);
  }
}

test('find, put and delete give @atcute/mst\'s answers and roots, reading the same blocks, on random trees', async () => {
  const random = mulberry32(7);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const newKey = () => `${pick(COLLECTIONS)}/3l${Array.from({ length: 1 + Math.floor(random() * 12) }, () => pick(RKEY_CHARS)).join('')}`;
  const heights = new KeyHeights();
  let operations = 0;
  for (let trial = 0; trial < 30; trial++) {
    const blocks = new MemoryBlockStore();
    const nodes = new NodeStore(blocks);
    const wrangler = new NodeWrangler(nodes);
    const keys = new Set<string>();
    // The empty tree's node is a block too, as in a repo whose records were all deleted.
    let root = (await (await nodes.put(MSTNode.empty())).cid()).$link;
    const size = Math.floor(random() * 160);
    while (keys.size < size) keys.add(newKey());
    for (const key of keys) root = await wrangler.putRecord(root, key, pick(LEAVES));
    for (let step = 0; step < 25; step++) {
      const present = [...keys];
      const key = present.length > 0 && random() < 0.6 ? pick(present) : newKey();
      const action = random() < 0.5 ? 'put' : 'delete';
      const value = pick(LEAVES);

      const recording = new RecordingStore(blocks);
      const store = new NodeStore(new OverlayBlockStore(new MemoryBlockStore(), recording));
      const expectedFound = await (await NodeWalker.create(store, root)).findRpath(key);
      const expectedRoot = action === 'put' ? await new NodeWrangler(store).putRecord(root, key, value) : await new NodeWrangler(store).deleteRecord(root, key);

      const car = new RecordingCar(carOf([CID.parse(root)], [...blocks.blocks].map(([cid, bytes]) => ({ cid: CID.parse(cid), bytes }))));
      const tree = new ProofTree(car, heights);
      const rootLink = new CidLinkWrapper(CID.parse(root).bytes);
      const found = tree.find(rootLink, key);
      const newRoot = action === 'put' ? tree.put(rootLink, key, value) : tree.delete(rootLink, key);

      const what = `trial ${trial} step ${step}: ${action} ${key} in a tree of ${keys.size}`;
      assert.equal(found?.$link ?? null, expectedFound?.$link ?? null, `${what}: find`);
      assert.equal(newRoot.$link, expectedRoot, `${what}: the new root`);
      assert.deepEqual([...car.read].sort(), [...recording.read].sort(), `${what}: the blocks read`);
      operations++;

      root = action === 'put' ? await wrangler.putRecord(root, key, value) : await wrangler.deleteRecord(root, key);
      if (action === 'put') keys.add(key);
      else keys.delete(key);
    }
  }
  assert.equal(operations, 30 * 25);
});
