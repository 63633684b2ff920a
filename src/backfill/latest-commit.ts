import { CID } from 'multiformats/cid';
import { BackfillFailure } from './failure.ts';
import { readCommitBlock, readRepoCommit, type CommitCheck, type SignedCommit } from './repo-car.ts';
import { fetchRepo, fetchSync, MethodNotImplemented, type FetchLimits } from './repo-fetch.ts';

/** The longest getLatestCommit answer read: `{"cid","rev"}` is under 200 bytes. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** Times the latest commit is asked for when the one named was replaced before its block was fetched. */
const MAX_ROUNDS = 3;

/**
 * The repo's current signed commit, fetched alone: `com.atproto.sync.getLatestCommit` names its
 * CID, then `com.atproto.sync.getBlocks` sends that one block, hashed against the CID and checked
 * as a getRepo CAR's commit is (this DID's v3 commit, a TID rev, `checkCommit`'s signature).
 * Nothing the PDS says is taken on its word: the CID only names which block to ask for.
 *
 * A PDS drops a commit's block once the next commit replaces it (the real one then answers
 * getBlocks 400 InvalidRequest "Could not find cids", the lexicon says BlockNotFound), so a repo
 * that writes between the two requests fails the second: after such a failure, if the latest
 * commit has changed since, it is asked for again (MAX_ROUNDS in all); if not, the failure stands.
 * Any other failure (too large, a bad signature) stands at once.
 *
 * A PDS that does not implement either method (501 MethodNotImplemented: PDSes in the wild have
 * lacked getLatestCommit) is asked for its `com.atproto.sync.getRepo` export instead, whose root is
 * the commit: read through, every block hashed, within the same `limits.maxBytes` (a repo whose
 * export is larger fails too_large), only the commit kept, and checked the same way. Without it
 * such a repo's resyncs all failed and its commits stayed withheld; an honest PDS with both
 * methods never pays for the export, and a hostile one gains nothing: it could already send
 * `maxBytes` as its getBlocks answer.
 */
export async function fetchLatestCommit(pdsUrl: string, did: string, limits: FetchLimits, checkCommit: CommitCheck): Promise<SignedCommit> {
  try {
    return await fetchNamedCommit(pdsUrl, did, limits, checkCommit);
  } catch (err) {
    if (!(err instanceof MethodNotImplemented)) throw err;
    return fetchRepo(pdsUrl, did, limits, (chunks) => readRepoCommit(chunks, did, limits.maxBytes, checkCommit));
  }
}

/** getLatestCommit, then getBlocks for the block it names (see fetchLatestCommit). */
async function fetchNamedCommit(pdsUrl: string, did: string, limits: FetchLimits, checkCommit: CommitCheck): Promise<SignedCommit> {
  const latest = () =>
    fetchSync(pdsUrl, { method: 'com.atproto.sync.getLatestCommit', params: { did }, accept: 'application/json', what: 'the latest commit' }, limits, readLatestCommitCid);
  let cid = await latest();
  for (let round = 1; ; round++) {
    const named = cid;
    try {
      return await fetchSync(
        pdsUrl,
        { method: 'com.atproto.sync.getBlocks', params: { did, cids: named.toString() }, accept: 'application/vnd.ipld.car', what: 'the commit block' },
        limits,
        (chunks) => readCommitBlock(chunks, named, did, limits.maxBytes, checkCommit),
      );
    } catch (err) {
      const blockGone = err instanceof BackfillFailure && !(err instanceof MethodNotImplemented) && (err.reason === 'missing_block' || err.reason === 'fetch_failed');
      if (!blockGone || round >= MAX_ROUNDS) throw err;
      cid = await latest();
      if (cid.equals(named)) throw err;
    }
  }
}

/** The commit CID of a getLatestCommit answer (`{"cid": "…", "rev": "…"}`). */
async function readLatestCommitCid(chunks: AsyncIterable<Uint8Array>): Promise<CID> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    size += chunk.byteLength;
    if (size > MAX_ANSWER_BYTES) throw new BackfillFailure('bad_commit', `the getLatestCommit answer is over ${MAX_ANSWER_BYTES} bytes`);
    parts.push(chunk);
  }
  let answer: unknown;
  try {
    answer = JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch (err) {
    throw new BackfillFailure('bad_commit', `the getLatestCommit answer is not JSON: ${(err as Error).message}`);
  }
  const cid = (answer as { cid?: unknown } | null)?.cid;
  try {
    if (typeof cid !== 'string') throw new Error('it has no cid');
    return CID.parse(cid);
  } catch (err) {
    throw new BackfillFailure('bad_commit', `the getLatestCommit answer names no commit CID: ${(err as Error).message}`);
  }
}
