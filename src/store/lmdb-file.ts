import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** LMDB's meta page starts with this magic; opening anything else can crash the process natively. */
const LMDB_MAGIC = 0xbeefc0de;
/** What is read of a meta page: its page header (16 bytes in LMDB 0.9's layout, 24 in LMDB 1.0's, lmdb-js's) and its meta up to the txnid. */
const META_BYTES = 24 + 136;
/** A table's root page when it has none (LMDB's P_INVALID). */
const NO_PAGE = 0xffff_ffff_ffff_ffffn;
/** The page sizes LMDB takes (mdb_env_set_pagesize): a power of two from 256 bytes to 64 KiB. */
const PAGE_SIZES = { min: 256, max: 0x10000 };

/**
 * Refuses a data file LMDB cannot map as it is, before LMDB opens it: LMDB reads the file through
 * its memory map, and the process would die of SIGSEGV or SIGBUS with nothing said. That is a file
 * that is not LMDB's (no magic number), one shorter than LMDB's meta pages (another program's, or
 * one cut short at its start), and one cut short after them (a copy or a restore that did not
 * finish): not a whole number of pages, or ending before the root page of a table its newest meta
 * page names. A file cut after those roots still opens, and a read of a page past its end kills
 * the process with SIGBUS, which no check short of reading every tree would prevent. A meta page
 * naming a page size LMDB cannot have (a damaged one) would kill it too, and is refused. A missing or
 * empty one is fine: LMDB initializes it (a read-only open cannot: the caller says there is no
 * buffer yet).
 */
export function assertLmdbFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return; // no file yet
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return; // new: LMDB initializes it
    const first = Buffer.alloc(META_BYTES);
    if (readSync(fd, first, 0, META_BYTES, 0) < META_BYTES) {
      throw new Error(`${path} is not an LMDB database (${size} bytes: shorter than LMDB's meta pages); refusing to open it`);
    }
    const base = first.readUInt32LE(24) === LMDB_MAGIC ? 24 : first.readUInt32LE(16) === LMDB_MAGIC ? 16 : undefined;
    if (base === undefined) throw new Error(`${path} is not an LMDB database (no LMDB magic number); refusing to open it`);
    // The meta: magic, version, map address and size, then the free-page table's record and the
    // main table's (each: the page size or pad, flags, depth, page counts, entries, root page), the
    // last page used and the txnid.
    const pageSize = first.readUInt32LE(base + 24);
    // LMDB maps the file with the page size its meta names: one it cannot have kills the process.
    if (pageSize < PAGE_SIZES.min || pageSize > PAGE_SIZES.max || (pageSize & (pageSize - 1)) !== 0) {
      throw new Error(`${path} is not an LMDB database (its meta page names ${pageSize}-byte pages, which LMDB cannot have: a damaged meta page?); refusing to open it`);
    }
    const second = Buffer.alloc(META_BYTES);
    const metas = [first];
    if (pageSize >= META_BYTES && readSync(fd, second, 0, META_BYTES, pageSize) === META_BYTES && second.readUInt32LE(base) === LMDB_MAGIC) metas.push(second);
    const newest = metas.reduce((a, b) => (b.readBigUInt64LE(base + 128) > a.readBigUInt64LE(base + 128) ? b : a));
    // Not the last page used: the file may end before it, where the free list holds the last pages
    // and they were never written. The roots of the two tables every read starts from were.
    const pages = BigInt(Math.floor(size / pageSize));
    const pastTheEnd = [newest.readBigUInt64LE(base + 64), newest.readBigUInt64LE(base + 112)].find((root) => root !== NO_PAGE && root >= pages);
    if (size % pageSize !== 0 || pastTheEnd !== undefined) {
      throw new Error(
        `${path} is cut short: the file has ${size} bytes (${size % pageSize === 0 ? `${pages} pages, and its newest meta page names page ${pastTheEnd}` : `not a whole number of ${pageSize}-byte pages`}; ` +
          'a copy or a restore that did not finish?). Refusing to open it: restore it whole, or move it aside (or pass another --data-dir) to start a new buffer',
      );
    }
  } finally {
    closeSync(fd);
  }
}
