/**
 * Package cluster runs contrail on several machines (or several processes of one machine) that
 * serve the same events with the same cursors, on NATS JetStream.
 *
 * How it works: one JetStream stream is the cluster's log of committed batches. One node at a
 * time — the ingest leader, holder of a lease in a NATS KV bucket (lease.ts) — reads the relay,
 * assigns time_us and seq, and appends each batch the Ingester would have committed to the stream
 * (stream-writer.ts). Every node, the leader included, follows the stream in order into its own
 * LMDB buffer (follower.ts), writing each batch exactly as the leader built it, and serves
 * /subscribe from that buffer as a single node does. So a time_us (or seq) names the same event
 * on every node, and a client may resume on any node with the cursor it got from another — also
 * on a node still behind the one it left: a cursor past a node's buffer waits until the node holds
 * the stream's end as of the connect (stream-end.ts) before it is taken for a future one. The
 * leader commits its own batch as built the moment the stream acknowledges it, and closes its own
 * consumer for its term (nats-server then delivers each batch to the other nodes only, and the
 * leader decodes nothing it built): the acknowledgement of an append that named its
 * predecessor says the batch directly follows what the buffer holds, so its buffer, too, takes
 * the stream's order, one NATS hop sooner. It publishes the next batch while the one before is
 * in flight (two appends at most), so events do not queue behind a whole round trip.
 * Nothing else on a batch's way waits on a timer or a request of its own: a follower's consumer
 * keeps 256 messages requested (the client asks for more at 192 left), and every socket is
 * no-delay (the NATS client and ws set it, nats-server and uWebSockets.js on what they accept).
 * What a batch waits for beyond contrail's steps is nats-server and the scheduler of the cores
 * it shares (README Performance, "Where the p99 goes" and "The p99's leads checked").
 *
 * Why it is safe across failovers: a new leader first appends a marker after the stream's end
 * (fencing) and waits until its buffer holds everything before it; its clock, upstream cursor
 * and revs then continue exactly where the stream ends, so time_us keeps increasing and the
 * relay is resumed from the last appended cursor (leadership.ts). Every append names the
 * sequence it must follow and the id of the message it must follow (expected-last-sequence and
 * expected-last-msg-id: with appends in flight, the id is what refuses a message whose
 * predecessor was refused while a marker took that seq), so once the marker is in, an older
 * leader — paused, partitioned, or with publishes in flight — can no longer append anything: the
 * lease only elects, the stream fences. A deposed leader drops what it read and did not append;
 * the new leader reads it again from the relay. Any failed append ends the term the same way.
 * A stream made again (removed, or lost with NATS's storage) numbers its messages from 1 again:
 * each node notices its new creation time and reads it from its start (follower.ts), failing
 * every wait for a seq of the stream before (that seq names another message now), and one
 * removed while the cluster runs is made again by the first node whose append, marker or lease
 * check meets it gone (nats.ts), as the lease bucket is. A new term checks the stream before and
 * after its marker's append: made again in between, it numbers the marker below the buffer's old
 * position, which would take it for reached at once (and the term's own batches for passed), so
 * the term begins again at the next lease check (leadership.ts). A lease bucket made again
 * numbers its entries from 1 too, so another node's new lease can stand at the very revision the
 * old leader last wrote in the removed bucket: a renewal therefore reads the entry first, and a
 * node that finds anything but its own entry (its node id at that revision), no entry included,
 * steps down as on any lost renewal (lease.ts). No entry is a lease gone (expired, or its bucket
 * made again), and letting the update, a compare-and-set on the revision, decide it let another
 * node's take land in between at that revision and be replaced. The read goes to the bucket's
 * stream leader as the update does (nats.ts opens the bucket without direct gets): a direct get,
 * which any replica of an R3 bucket may answer, could show an older entry (ending a healthy
 * term) or none. A bucket or stream NATS refuses to make again is logged with NATS's reason at
 * every try (nats.ts), as its callers swallow the error and try again at the next check. Chosen over a per-term token in the entry's value (which needs the same read: the compare-and-set
 * checks the revision only) so that the value stays the holder's node id, which operators (`nats
 * kv get`) and the tests read. The read leaves one round trip in which the bucket would have to
 * be removed, made again and taken at that same revision; the stream fences even that.
 * A node whose follower stopped for good (a buffer this stream did not write, a stream record it
 * cannot decode, a data dir deleted under it: `failed`) gives the lease up and never competes
 * again, whoever runs it. A record that cannot be decoded is not passed over: it may hold events
 * (a newer leader's layout), and a node without them would serve other events under their seqs.
 *
 * A batch bigger than the NATS servers' max_payload is appended as consecutive parts, cut at
 * event boundaries and published together (each naming the seq of the one before it), that are
 * still one commit: followers apply it when its last part arrives (which alone carries the
 * upstream cursor) and drop its parts if a leader marker comes first.
 * So a leader that dies between two parts leaves nothing half-applied, and its successor, resuming
 * from the cursor before that batch, reads all of it again: nothing lost, nothing twice.
 *
 * Files: nats.ts (connection, stream and lease bucket), nats-servers.ts (--nats URLs: their credentials
 * as the client's options, never shown), stream-record.ts (message layout, split),
 * lease.ts (the ingest lease), stream-writer.ts (fenced appends), follower.ts (stream → local
 * buffer), leadership.ts (terms: fence, catch up, ingest, step down), metrics.ts (leader, terms,
 * applied seq), stream-end.ts (waiting until the buffer holds the stream's end: a client's cursor
 * ahead of this node's buffer), node.ts (a node's wiring), hop-timing.ts (per-batch hop times for bench/cluster
 * --hops, off unless --nats-hop-timing names a file).
 */
export type { ClusterOptions } from './nats.ts';
export { joinCluster, type ClusterNode } from './node.ts';
export type { IngestRun } from './leadership.ts';
export { natsServers } from './nats-servers.ts';
