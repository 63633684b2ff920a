/**
 * Damage to an LMDB file's pages, as a failing disk or a stray write leaves it, for tests that
 * need LMDB itself to refuse a read (MDB_PAGE_NOTFOUND, MDB_CORRUPTED) rather than a value whose
 * bytes changed. It edits data.mdb of a closed environment in place, reading its B-tree pages as
 * lmdb-js's LMDB lays them out: a 24-byte page header (page number, txnid, pad, flags, lower,
 * upper), then the node offsets (relative to the header's end); a node is its data size (u32),
 * flags (u16) and key size (u16), then the key, then the data (for a value on overflow pages,
 * F_BIGDATA, the first page's number). Every copy of a page in the file is changed, the current
 * one and the older ones LMDB keeps for reuse alike. breakLeafPagesInPlace damages the file of an
 * environment a running contrail has open, as a disk going bad under it would.
 */
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const PAGE_HEADER = 24;
const P_LEAF = 0x02;
const F_BIGDATA = 0x01;

interface LeafNode {
  page: number;
  /** Where the node starts in the file. */
  at: number;
  flags: number;
  key: Buffer;
  /** Where its data starts in the file. */
  dataAt: number;
}

function* leafNodes(file: Buffer, pageSize: number): Generator<LeafNode> {
  // Pages 0 and 1 are the meta pages.
  for (let page = 2; (page + 1) * pageSize <= file.length; page++) {
    const base = page * pageSize;
    if (Number(file.readBigUInt64LE(base)) !== page || (file.readUInt16LE(base + 18) & P_LEAF) === 0) continue;
    const count = Math.min(file.readUInt16LE(base + 20) >> 1, (pageSize - PAGE_HEADER) >> 1);
    for (let i = 0; i < count; i++) {
      const at = base + PAGE_HEADER + file.readUInt16LE(base + PAGE_HEADER + 2 * i);
      if (at + 8 > base + pageSize) continue;
      const keySize = file.readUInt16LE(at + 6);
      if (at + 8 + keySize + 8 > base + pageSize) continue;
      yield { page, at, flags: file.readUInt16LE(at + 4), key: file.subarray(at + 8, at + 8 + keySize), dataAt: at + 8 + keySize };
    }
  }
}

function edit(dataDir: string, change: (file: Buffer) => number): number {
  const path = join(dataDir, 'data.mdb');
  const file = readFileSync(path);
  const changed = change(file);
  if (changed === 0) throw new Error(`nothing to damage in ${path}`);
  writeFileSync(path, file);
  return changed;
}

/**
 * The value `value` (stored on overflow pages: larger than about half a page) is pointed at a
 * page past the end of the file, so reading it fails with MDB_PAGE_NOTFOUND. Returns how many
 * leaf nodes were changed.
 */
export function pointValuePastFile(dataDir: string, pageSize: number, value: Buffer): number {
  return edit(dataDir, (file) => {
    const at = file.indexOf(value);
    if (at < 0 || file.indexOf(value, at + 1) >= 0) throw new Error('the value must lie once in data.mdb');
    const firstPage = Math.floor(at / pageSize);
    let changed = 0;
    for (const node of leafNodes(file, pageSize)) {
      if ((node.flags & F_BIGDATA) === 0 || Number(file.readBigUInt64LE(node.dataAt)) !== firstPage) continue;
      file.writeBigUInt64LE(BigInt(Math.floor(file.length / pageSize) + 1_000_000), node.dataAt);
      changed++;
    }
    return changed;
  });
}

/**
 * The leaf pages holding key `key` are marked as neither leaf nor branch, so LMDB answers a
 * lookup that reaches them with MDB_CORRUPTED ("Located page was wrong type"). Returns how many
 * pages were changed.
 */
export function breakLeafPagesOf(dataDir: string, pageSize: number, key: Buffer): number {
  return edit(dataDir, (file) => {
    const pages = leafPagesOf(file, pageSize, key);
    for (const page of pages) file.writeUInt16LE(0, page * pageSize + 18);
    return pages.size;
  });
}

/**
 * breakLeafPagesOf under a running contrail: only each page's flags are written, in place, so
 * the file it maps keeps its size and every other byte (a whole file written back would undo
 * what it wrote meanwhile).
 */
export function breakLeafPagesInPlace(dataDir: string, pageSize: number, key: Buffer): number {
  return breakLeafPagesUntilMended(dataDir, pageSize, key).pages;
}

/**
 * breakLeafPagesInPlace, and `mend()`, which writes each page's flags back as they were, in place
 * (as a page restored, or a disk's transient fault cleared): LMDB reads the pages again as before.
 */
export function breakLeafPagesUntilMended(dataDir: string, pageSize: number, key: Buffer): { pages: number; mend(): void } {
  const path = join(dataDir, 'data.mdb');
  const file = readFileSync(path);
  const pages = leafPagesOf(file, pageSize, key);
  if (pages.size === 0) throw new Error(`nothing to damage in ${path}`);
  const flags = new Map([...pages].map((page) => [page, Buffer.from(file.subarray(page * pageSize + 18, page * pageSize + 20))]));
  const writeFlags = (flagsOf: (page: number) => Buffer) => {
    const fd = openSync(path, 'r+');
    try {
      for (const page of pages) writeSync(fd, flagsOf(page), 0, 2, page * pageSize + 18);
    } finally {
      closeSync(fd);
    }
  };
  writeFlags(() => Buffer.alloc(2));
  return { pages: pages.size, mend: () => writeFlags((page) => flags.get(page)!) };
}

/**
 * The first byte of the value under key `key` (stored in its leaf node, not on overflow pages) is
 * written as `byte` in every leaf node holding the key, in place under a running contrail, as a
 * stray write would change it: LMDB reads the value without fault, and its decoder refuses it.
 * Returns how many leaf nodes were changed.
 */
export function changeValueFirstByteInPlace(dataDir: string, pageSize: number, key: Buffer, byte: number): number {
  const path = join(dataDir, 'data.mdb');
  const nodes = [...leafNodes(readFileSync(path), pageSize)].filter((node) => node.key.equals(key) && (node.flags & F_BIGDATA) === 0);
  if (nodes.length === 0) throw new Error(`nothing to damage in ${path}`);
  const fd = openSync(path, 'r+');
  try {
    for (const node of nodes) writeSync(fd, Buffer.from([byte]), 0, 1, node.dataAt);
  } finally {
    closeSync(fd);
  }
  return nodes.length;
}

function leafPagesOf(file: Buffer, pageSize: number, key: Buffer): Set<number> {
  const pages = new Set<number>();
  for (const node of leafNodes(file, pageSize)) if (node.key.equals(key)) pages.add(node.page);
  return pages;
}

/**
 * The key `key` of every leaf node holding it is changed to `newKey` (of the same length), as a
 * stray write would change it: its value stays, now under another key. Returns how many leaf
 * nodes were changed.
 */
export function changeKey(dataDir: string, pageSize: number, key: Buffer, newKey: Buffer): number {
  if (newKey.length !== key.length) throw new Error('the new key must be as long as the old one');
  return edit(dataDir, (file) => {
    let changed = 0;
    for (const node of leafNodes(file, pageSize)) {
      if (!node.key.equals(key)) continue;
      newKey.copy(file, node.at + 8);
      changed++;
    }
    return changed;
  });
}
