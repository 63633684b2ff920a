/**
 * Stage verify (opt-in, `--verify signatures|full`) sits between upstream and events: a commit
 * reaches the events only if it proves it is the repo owner's. It trusts nothing the relay
 * says — the relay may be buggy, or hostile.
 *
 * What is checked (check.ts): the signed commit named by the frame is in its CAR and hashes to
 * its CID, is a v3 commit of this repo at the frame's rev (signed-commit.ts); the rev is a TID
 * not over five minutes ahead and newer than the last verified one; the signature verifies
 * with the repo's current #atproto key (low-S compact ECDSA: K-256 with libsecp256k1 as a
 * native addon, the `secp256k1` package; P-256 with @atcute/crypto on Node's OpenSSL). `full`
 * adds the sync 1.1 proof (inversion.ts): `ops[].prev` agrees with each action, and undoing the
 * ops on the new MST — whose nodes the CAR must carry, each hashed against its CID — yields
 * `prevData`. A #sync frame gets the same signature and rev checks and re-establishes its repo.
 *
 * Why the MST work is done here (proof-tree.ts, mst-node.ts) and not by @atcute/mst, which did
 * it until the throughput goal (3,000 commits/s on two cores) was measured against it: the
 * library is asynchronous per key and hashes every key of every node it decodes or builds to
 * check its height — 57 SHA-256 per commit, half of a `full` check. proof-tree.ts repeats the
 * library's NodeWalker.findRpath and NodeWrangler.putRecord/deleteRecord step for step, with
 * the same node checks, but synchronously and with key heights cached per thread (bounded in
 * bytes: a key may be 1,024 characters) and carried by each node (13 SHA-256 per commit: the
 * nodes' bytes and CIDs), and with the nodes' DAG-CBOR
 * read and written directly (node-cbor.ts; anything but a node's plain canonical form goes to
 * the generic codec, so nodes read as before). The library stays the reference:
 * test/proof-tree.fuzz.test.ts holds the two to the same roots and the same blocks read on
 * random trees, test/mst-node.fuzz.test.ts the node codec to @atcute/cbor and @atcute/mst, and
 * the backfill walk still uses the library.
 *
 * Where checks run (check-pool.ts, check-worker.ts): with --verify-workers > 0, the Verifier
 * starts the stateless checks (signature, MST) of messages as they arrive (up to a window ahead
 * of the one being judged) on worker threads, a repo always on the same one, with the key cached
 * at that moment; when a message's turn comes it uses that result if the key is still the same
 * (else it checks again), so workers change no order and hold no state. Checks started in one
 * turn go to a worker as one message, their bytes copied into one buffer that is handed over
 * rather than cloned, and answers come back up to eight at a time (in `full`, each passed one
 * with its commit's MST root, which the chain needs, as a view of one handed-over buffer: this
 * thread never decodes a commit the worker checked, and the chain keeps the root as a string of
 * its own, not the answer's whole buffer): per message and per object cloned, both threads pay. A worker that dies rejects its checks, which then run on this thread,
 * and is started again (the threads stage's WorkerPool).
 *
 * How it flows (verifier.ts): one ordered queue. The key comes from the identity stage's cache
 * without waiting (a DID no atproto method resolves fails at once, with no state kept; a repo's
 * first document waits its turn at the resolver however many wait, and reading pauses while more
 * did:plc repos wait than the resolver's queue bound); a repo whose key is unknown has its messages held — per repo, bounded in
 * bytes (per repo and in total; an #identity or #account event, which no resync brings back,
 * only in total) — while its DID is resolved, and the rest of the stream goes
 * on. Reading pauses while half the total bound is held for did:plc repos (a cold cache's burst), so that bound
 * drops only what was read before the pause; each pause is counted and logged (by what started
 * it). did:web repos never pause reading: their hosts are anyone's, and stalling ones would hold up
 * every repo. They are bounded apart, all together: past the resolver's queue bound of them
 * waiting, a new one's commit fails as unknown_key (one whose signature failed is fetched once), and past a quarter of the total bound held for
 * them, their commits fail as held_overflow (both then resync). Held messages are released in their order, marked so the store accepts them below its
 * watermark; meanwhile the saved upstream cursor stays below the oldest held seq, so a crash
 * reads them again. So the order guaranteed is per repo: other repos overtake a held one (the
 * events stage gives time_us in emission order, so replays repeat what live clients got). A signature that fails with a key fetched before the commit arrived (or in its millisecond)
 * sends the repo back to waiting while the DID document is fetched again (asked again after a
 * passing failure of the directory, as a first document is, and counted with those): a rotated key
 * (announced by #identity, which also triggers a refresh) never drops a valid commit.
 *
 * A failure is never emitted: counted by reason (contrail_verify_failures_total), logged
 * rate-limited (DropLog), and the repo goes out of sync. With the `resync` option (the gateway
 * passes a fetch of the repo's signed commit through the backfill stage: getLatestCommit, then
 * getBlocks for that one block; not getRepo, the whole repo, which against the real PDS cost
 * 2.6 MB and 1.7 s for 10,000 records where the commit alone is 335 bytes and 17 ms, unless the
 * PDS implements neither method: then getRepo's root, within the same byte bound) its messages
 * are held, at most maxResyncs repos fetched at once, and a successful resync puts the repo back in sync at
 * the snapshot's rev (held commits not newer are dropped), its next commit chained in `full`
 * from the snapshot's signed MST root (so a relay that forces a resync gains nothing). Otherwise
 * its commits are withheld as `out_of_sync` (counted, not emitted and not held: the saved cursor
 * passes them, and the next snapshot holds what they changed) until a valid #sync, or until its
 * first commit past a wait starts a resync. There is a wait after a failed resync
 * (resyncRetryMs, doubling per failure in a row), and after a successful one that the repo failed
 * again soon after (until resyncRetryMs after that resync, doubling per resync in a row so
 * followed): both up to resyncRetryMaxMs (1 h), and a run of resyncs is forgotten once the repo
 * has gone that long since the last one without failing. The second wait is there because a
 * relay can fail any repo at will with one bad frame, and each resync is two requests to the
 * repo's PDS, which contrail must not let a relay multiply: without it, a frame a second per repo
 * would have each repo fetched 3,600 times an hour. It shares the first's setting
 * (--verify-resync-retry) because both bound the same
 * cost, and its default (30 s) lets an honest relay's rare second glitch of a repo resync at
 * once unless it comes within 30 s of the last resync; a relay breaking a repo on purpose gets at
 * most 7 fetches of it in any hour and about 5 an hour sustained (pausing an hour to reset the
 * run is its best), 1 an hour if it never pauses. A replay (rev not newer) is
 * dropped without that, as it withholds nothing. The per-repo state (last rev, out of sync, last
 * resync) lives in memory, bounded; a restart forgets it, and the store's own per-DID rev
 * check still keeps replays out. A restart (or a new leader's term) so starts every repo's run of
 * resyncs over: one fetch at once per repo the relay keeps breaking, then a fresh run, which the
 * relay gets anyway by pausing an hour; not worth a write per resync (README: Verification).
 *
 * Files: verifier.ts (the pipeline), check.ts (one commit or #sync), check-pool.ts and
 * check-worker.ts (worker threads), signed-commit.ts, inversion.ts, proof-tree.ts, mst-node.ts
 * and node-cbor.ts (the partial MST a commit's CAR carries, its nodes' bytes read and written
 * directly), signing-keys.ts (imported keys, cached),
 * failure.ts (reasons), metrics.ts (and the unshown gauges of a run that ended), repo-log.ts (the per-repo lines, and the one for a message
 * that failed unexpectedly, bounded per interval).
 */
export { RESYNC_RETRY_MAX_MS, Verifier, type ResyncedRepo, type VerifierOptions } from './verifier.ts';
export { CheckPool } from './check-pool.ts';
export { SigningKeys } from './signing-keys.ts';
export { type VerifyMode } from './check.ts';
export { type VerifyFailure } from './failure.ts';
export { createVerifyMetrics, type VerifyMetrics } from './metrics.ts';
