import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, type JetStreamClient, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { Kvm, type KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { natsServers } from './nats-servers.ts';

export interface ClusterOptions {
  /** NATS server URLs (any of the cluster's servers; the client fails over between them), credentials in them if NATS requires any (nats-servers.ts). */
  servers: string[];
  /** Copies NATS keeps of the stream and the lease: 3 for a 3-server cluster, 1 for a single server. */
  replicas: number;
  /** How long the stream keeps batches: what a node that was down can still catch up on. */
  retentionMs: number;
  /** How long a leader's lease lasts without renewal: the upper bound on failover detection. */
  leaseMs: number;
  /** Names the stream, subject and lease bucket, so several contrail clusters can share one NATS. */
  name: string;
  nodeId: string;
  /** Where to write the batches' hop timings at exit (hop-timing.ts), for bench/cluster's `--hops`; none in production. */
  hopTimingFile?: string;
}

export interface ClusterConnection {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly lease: KV;
  readonly streamName: string;
  readonly subject: string;
  /** False while the client is between servers (it reconnects by itself). */
  readonly connected: boolean;
  /**
   * Makes the lease bucket and the event stream again if they are gone (removed while the cluster
   * runs, or lost with NATS's storage), saying so; true if the stream was gone. Calls made while
   * one is under way share it, so a loss is made good and said once.
   */
  restoreMissing(): Promise<boolean>;
  /**
   * Another node's lease entry stood unrenewed for `stoodMs`: sets the lease bucket's max_age back
   * to the lease if its entries no longer expire by then (max_age 0, changed by hand: nodes set it
   * at start), saying so. Its entries are what expire a dead leader's lease.
   */
  restoreLeaseExpiry(stoodMs: number): Promise<void>;
}

/**
 * Connects and makes sure the event stream and the lease bucket exist with the configured
 * retention and replicas. Every node does this at start; creating what exists is a no-op, and a
 * change of retention, lease or replicas is applied to what exists (applySettings).
 */
export async function openCluster(options: ClusterOptions, logger: Logger): Promise<ClusterConnection> {
  const { servers, shown, auth } = natsServers(options.servers);
  const nc = await connect({
    servers,
    ...auth,
    name: `contrail ${options.nodeId}`,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  }).catch((err: Error) => {
    throw new Error(`could not connect to NATS at ${shown.join(', ')}: ${err.message} (check --nats: nats-server's client URLs, with the credentials it requires as nats://user:password@host:4222)`);
  });
  try {
    const jsm = await explainReplicaErrors(options.replicas, () => jetstreamManager(nc));
    const js = jetstream(nc);
    const streamName = `${options.name}-events`;
    const subject = `${options.name}.events`;
    const config = {
      name: streamName,
      subjects: [subject],
      max_age: nanos(options.retentionMs),
      num_replicas: options.replicas,
      max_msg_size: -1,
      // NATS refuses a duplicate window longer than the retention; appends are fenced by sequence anyway.
      duplicate_window: nanos(Math.min(120_000, options.retentionMs)),
    };
    await explainReplicaErrors(options.replicas, async () => {
      const existing = await jsm.streams.info(streamName).catch(() => undefined);
      if (!existing) {
        await jsm.streams.add(config);
        return;
      }
      refuseForeignSettings(existing.config, subject);
      await applySettings(jsm, existing.config, { ...config, num_replicas: options.replicas }, logger);
    });
    const bucket = `${options.name}-leader`;
    const existingBucket = await jsm.streams.info(`KV_${bucket}`).catch(() => undefined);
    if (existingBucket) refuseForeignLeaseBucket(existingBucket.config, bucket);
    const makeLeaseBucket = () => explainReplicaErrors(options.replicas, () => new Kvm(js).create(bucket, { ttl: options.leaseMs, history: 1, replicas: options.replicas }));
    await makeLeaseBucket();
    // Read through the bucket's stream leader, as its compare-and-set is answered: a direct get (the
    // bucket's default) may be answered by any replica, one behind the latest writes (lease.ts).
    const lease = await new Kvm(js).open(bucket, { allow_direct: false });
    // Kvm.create keeps an existing bucket as it is, and its entries' lifetime is the lease.
    await explainReplicaErrors(options.replicas, async () => {
      const { config: bucketConfig } = await jsm.streams.info(`KV_${bucket}`);
      await applySettings(jsm, bucketConfig, { max_age: nanos(options.leaseMs), duplicate_window: nanos(Math.min(120_000, options.leaseMs)), num_replicas: options.replicas }, logger);
      if (bucketConfig.max_age !== nanos(options.leaseMs)) {
        logger.warn({ from: Math.round(bucketConfig.max_age / 1e6), to: options.leaseMs }, 'the ingest lease now lasts this node\'s --nats-lease (give every node the same one)');
      }
    });
    logger.info({ servers: shown, stream: streamName, nodeId: options.nodeId }, 'joined the contrail cluster on NATS JetStream');
    const missing = (stream: string) => jsm.streams.info(stream).then(() => false, isStreamNotFound);
    let restoring: Promise<boolean> | undefined;
    /**
     * Said before it is made, so that no line of this node's (its follower meeting the new stream)
     * comes first; a refusal is said too: the callers swallow it and try again at their next check.
     */
    const makeAgain = async (what: string, goneWhy: string, make: () => Promise<unknown>, untilMade: string): Promise<void> => {
      logger.error(`${what} WAS GONE (${goneWhy}): this node makes it again`);
      try {
        await make();
      } catch (err) {
        logger.error({ err: (err as Error).message }, `COULD NOT MAKE ${what} AGAIN: ${untilMade} (tried again at every lease check; err says why)`);
        throw err;
      }
    };
    /**
     * Still missing after a random pause of up to a check period. The nodes' lease checks find a
     * bucket gone together (their periods are alike), and two requests making one stream at once
     * could leave NATS 2.9 answering nothing about it (nats-server#3677): in two CI runs of
     * lease-bucket-removed.test.ts no lease could be read or taken for 30 s after both nodes made
     * it. Paused apart, the later node finds it made and leaves it.
     */
    const missingAfterPause = async (stream: string): Promise<boolean> => {
      await sleep(Math.random() * Math.min(options.leaseMs / 3, 1_000));
      return missing(stream);
    };
    const restore = async (): Promise<boolean> => {
      if ((await missing(`KV_${bucket}`)) && (await missingAfterPause(`KV_${bucket}`))) {
        // The lease only elects (appends are fenced by the stream), so a new bucket is safe; the
        // KV handle addresses the bucket by name and works on the new one.
        await makeAgain(`THE LEASE BUCKET ${bucket}`, 'removed from NATS?', makeLeaseBucket, 'no node can take the ingest lease until it is made');
      }
      if (await missing(streamName)) {
        // What it held is in the nodes' buffers; each reads the new stream from its start
        // (follower.ts), and the next leader's marker is its first message.
        if (await missingAfterPause(streamName)) {
          await makeAgain(`THE CLUSTER STREAM ${streamName}`, 'removed from NATS, or its storage lost?', () => jsm.streams.add(config), 'no leader can append, and nothing is ingested until it is made');
        }
        return true;
      }
      return false;
    };
    const restoreLeaseExpiry = async (stoodMs: number): Promise<void> => {
      const { config: bucketConfig } = await jsm.streams.info(`KV_${bucket}`);
      const maxAgeMs = bucketConfig.max_age / 1e6;
      // Another max_age that expires the entry by itself (a node started with another --nats-lease) is left as it is.
      if (maxAgeMs === options.leaseMs || (maxAgeMs !== 0 && stoodMs < 2 * maxAgeMs)) return;
      await jsm.streams.update(bucketConfig.name, { ...bucketConfig, max_age: nanos(options.leaseMs) });
      logger.error(
        { bucket, maxAgeMs, stoodMs: Math.round(stoodMs), leaseMs: options.leaseMs },
        `THE LEASE BUCKET ${bucket} NO LONGER EXPIRED ITS ENTRIES AFTER THE LEASE (its max_age changed by hand?), so a dead leader's lease outlived it: this node set it back`,
      );
    };
    const connection = {
      nc, js, jsm, lease, streamName, subject, connected: true,
      restoreMissing: () => (restoring ??= restore().finally(() => (restoring = undefined))),
      restoreLeaseExpiry,
    };
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') connection.connected = false;
        if (status.type === 'reconnect') connection.connected = true;
        if (status.type === 'disconnect' || status.type === 'reconnect') logger.warn({ server: status.server }, `NATS ${status.type}`);
      }
    })();
    return connection;
  } catch (err) {
    await nc.close();
    throw err;
  }
}

/**
 * A stream of the cluster's name that contrail did not make (by hand, or another application's
 * on a shared NATS) may refuse every append (another subject, a message size limit) or drop
 * batches before the retention without a word (a limit discarding the oldest, a retention that
 * deletes what is read): contrail neither changes nor uses it. A limit with discard new refuses
 * appends once reached, which the leader logs (the split test cuts a batch so).
 */
function refuseForeignSettings(existing: StreamConfig, subject: string): void {
  const differing = [];
  if (!existing.subjects?.includes(subject)) differing.push(`subjects ${JSON.stringify(existing.subjects ?? [])}`);
  if (existing.retention !== RetentionPolicy.Limits) differing.push(`retention ${existing.retention}`);
  if ((existing.max_msg_size ?? -1) !== -1) differing.push(`max_msg_size ${existing.max_msg_size}`);
  for (const limit of existing.discard === DiscardPolicy.New ? [] : (['max_msgs', 'max_bytes', 'max_msgs_per_subject'] as const)) {
    if ((existing[limit] ?? -1) !== -1) differing.push(`${limit} ${existing[limit]} (discarding the oldest)`);
  }
  if (differing.length === 0) return;
  throw foreignStream(existing.name, differing, `subjects ["${subject}"], retention limits, no message size limit, no count or byte limit discarding the oldest`);
}

/**
 * The lease bucket's stream (KV_<bucket>) likewise: another application's stream of that name
 * would have its retention cut to the lease and, not being a KV bucket, refuse every lease (no
 * node would ever lead); another's KV bucket of that name would lose its entries after the lease.
 * Its max_age is not checked: contrail changes it to --nats-lease (applySettings).
 */
function refuseForeignLeaseBucket(existing: StreamConfig, bucket: string): void {
  const subjects = existing.subjects ?? [];
  const kvSubject = `$KV.${bucket}.>`;
  const differing = [];
  if (subjects.length !== 1 || subjects[0] !== kvSubject) differing.push(`subjects ${JSON.stringify(subjects)}: not a KV bucket`);
  else if (existing.max_msgs_per_subject !== 1) differing.push(`history ${existing.max_msgs_per_subject}`);
  if (existing.retention !== RetentionPolicy.Limits) differing.push(`retention ${existing.retention}`);
  if (differing.length === 0) return;
  throw foreignStream(existing.name, differing, `a KV bucket (subjects ["${kvSubject}"]) with history 1`);
}

function foreignStream(name: string, differing: string[], needs: string): Error {
  return new Error(
    `the NATS stream ${name} exists with settings contrail does not make (${differing.join(', ')}; contrail needs ${needs}): ` +
      'it was made by hand or by another application. Remove it if it is yours, or give this cluster another --nats-name',
  );
}

/**
 * Gives an existing stream (the event stream, or the lease bucket's) this node's flags: a cluster
 * restarted with another --nats-retention, --nats-lease or --nats-replicas must not keep the old
 * one. A lease bucket's entries outliving the renewals' period slow failover, and expiring before
 * it lose the lease at every renewal; a cluster grown from one NATS server to three would keep one
 * copy, lost with that server (NATS copies a stream to new peers in the background of the update).
 * A node started with flags other than the others' changes them back, so it says so.
 */
async function applySettings(jsm: JetStreamManager, existing: StreamConfig, wanted: Pick<StreamConfig, 'max_age' | 'duplicate_window' | 'num_replicas'>, logger: Logger): Promise<void> {
  if (existing.max_age === wanted.max_age && existing.num_replicas === wanted.num_replicas) return;
  await jsm.streams.update(existing.name, { ...existing, ...wanted });
  if (existing.num_replicas !== wanted.num_replicas) {
    logger.warn(
      { stream: existing.name, from: existing.num_replicas, to: wanted.num_replicas },
      `NATS now keeps ${wanted.num_replicas} copies of ${existing.name}, this node's --nats-replicas (give every node the same one)`,
    );
  }
}

/** NATS's answer to a request about a stream it does not hold (removed, or lost with its storage). */
export function isStreamNotFound(err: unknown): boolean {
  return /stream not found/i.test((err as Error).message ?? '');
}

/**
 * NATS's answer to a publish nothing took: the client reports no responders on the subject as
 * 'jetstream is not enabled', though what it means here is that no stream listens on it.
 */
export function isUnansweredPublish(err: unknown): boolean {
  return /jetstream is not enabled/i.test((err as Error).message ?? '');
}

async function explainReplicaErrors<T>(replicas: number, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    const message = (err as Error).message;
    if (/insufficient resources|no suitable peers|replicas/i.test(message)) {
      throw new Error(`NATS could not place ${replicas} replicas (${message}): set --nats-replicas to the number of JetStream servers (1 for a single server)`);
    }
    if (/jetstream (is )?not enabled|503/i.test(message)) throw new Error(`NATS JetStream is not enabled on the server (${message}): start nats-server with -js`);
    throw err;
  }
}
