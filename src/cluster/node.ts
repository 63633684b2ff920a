import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { DataDirWatch, type Batch, type EventStore } from '../store/index.ts';
import { redactUrl } from '../upstream/index.ts';
import { HopLog } from './hop-timing.ts';
import { Leadership, type IngestRun } from './leadership.ts';
import { LeaderLease } from './lease.ts';
import { createClusterMetrics } from './metrics.ts';
import { openCluster, type ClusterConnection, type ClusterOptions } from './nats.ts';
import { decodeStreamRecord, type StreamRecord } from './stream-record.ts';
import { StreamFollower } from './follower.ts';
import { StreamEnd } from './stream-end.ts';
import { StreamWriter } from './stream-writer.ts';

export interface ClusterNode {
  readonly leading: boolean;
  /** Why this node should not take clients now (empty when it can). */
  problems(): string[];
  /** Resolves once the local buffer holds everything the stream held when this was called, while `wanted` (see stream-end.ts). */
  streamEndApplied(wanted: () => boolean): Promise<void>;
  /** Resolves if the node cannot go on: its buffer holds events the stream does not, a stream record cannot be decoded, or its data dir is gone (follower.ts). */
  readonly failed: Promise<Error>;
  stop(flushTimeoutMs: number): Promise<boolean>;
}

/**
 * Joins the cluster: follows the event stream into the local buffer, and competes for the
 * ingest lease, reading the relay while it holds it. A node that is still catching up with the
 * stream serves what it has and says so in /ready.
 */
export async function joinCluster(
  options: ClusterOptions,
  store: EventStore,
  dataDir: string,
  logger: Logger,
  registry: Registry,
  startIngest: (commit: (batch: Batch) => Promise<void>) => IngestRun,
  upstreamUrl: string,
): Promise<ClusterNode> {
  const connection = await openCluster(options, logger);
  const metrics = createClusterMetrics(registry);
  const hops = options.hopTimingFile === undefined ? undefined : new HopLog(options.hopTimingFile);
  const follower = new StreamFollower(connection, store, dataDir, logger, (seq) => metrics.appliedSeq.set(seq), hops);
  let dataDirWatch: DataDirWatch | undefined;
  try {
    await sayIfAnotherUpstream(connection, upstreamUrl, logger);
    dataDirWatch = new DataDirWatch(dataDir);
    await follower.start();
  } catch (err) {
    // The client reconnects for good: left open, it would keep the caller's process alive.
    dataDirWatch?.stop();
    await connection.nc.close();
    throw err;
  }
  // A data dir deleted (or made again) under the node stops its follower, and with it the node and its leading.
  const watch = dataDirWatch;
  void watch.gone.then((err) => follower.fail(err));
  const leadership = new Leadership({
    lease: new LeaderLease(connection.lease, options.nodeId),
    writer: new StreamWriter(connection.nc, connection.js, connection.jsm, connection.streamName, connection.subject, options.nodeId, (firstSeq, lastSeq, batch) => follower.ownAppend(firstSeq, lastSeq, batch), hops),
    follower,
    store,
    leaseMs: options.leaseMs,
    logger,
    hops,
    startIngest,
    onLeaderChange(leading) {
      metrics.leading.set(leading ? 1 : 0);
      if (leading) metrics.terms.inc();
    },
    onOversizedEvents: (count) => metrics.oversizedEvents.inc(count),
    restoreMissing: () => connection.restoreMissing(),
    restoreLeaseExpiry: (stoodMs) => connection.restoreLeaseExpiry(stoodMs),
  });
  leadership.start();
  const streamEnd = new StreamEnd(connection, follower, logger);
  return {
    get leading() {
      return leadership.leading;
    },
    problems() {
      const problems = [];
      if (!connection.connected) problems.push('not connected to NATS');
      if (!follower.caughtUp) problems.push('catching up with the cluster event stream');
      const upstream = leadership.upstreamProblem;
      if (upstream !== undefined) problems.push(`upstream not connected: ${upstream}`);
      const notIngesting = leadership.upstreamNotIngesting;
      if (notIngesting !== undefined) problems.push(notIngesting);
      return problems;
    },
    streamEndApplied: (wanted) => streamEnd.applied(wanted),
    failed: follower.failed,
    async stop(flushTimeoutMs) {
      watch.stop();
      streamEnd.stop();
      const flushed = await leadership.stop(flushTimeoutMs);
      await follower.stop();
      await connection.nc.close();
      return flushed;
    },
  };
}

/** How far back from the stream's end a batch naming its upstream is looked for (markers and parts name none). */
const UPSTREAM_LOOKBACK = 16;

/**
 * A node of another cluster left on the same --nats-name joins this cluster's stream, and once it
 * leads reads its own relay into it: said at start, not first when it leads. An operator moving
 * the whole cluster to another upstream reads the same line, and carries on. Only advice: a
 * record it cannot read is passed over, never a reason not to start (the follower says what it
 * could not read when it gets there, and stops the node).
 */
async function sayIfAnotherUpstream(connection: ClusterConnection, upstreamUrl: string, logger: Logger): Promise<void> {
  const { state } = await connection.jsm.streams.info(connection.streamName);
  for (let seq = state.last_seq; seq >= Math.max(1, state.first_seq, state.last_seq - UPSTREAM_LOOKBACK); seq--) {
    const message = await connection.jsm.streams.getMessage(connection.streamName, { seq }).catch(() => null);
    const record = message && decodedOrUndefined(message.data);
    const streamUpstream = record?.type === 'batch' ? record.batch.cursor?.url : undefined;
    if (streamUpstream === undefined) continue;
    if (redactUrl(streamUpstream) !== redactUrl(upstreamUrl)) {
      logger.error(
        { stream: connection.streamName, streamUpstream: redactUrl(streamUpstream), upstream: redactUrl(upstreamUrl) },
        "THIS NODE'S --upstream IS NOT THE ONE THE CLUSTER STREAM IS READ FROM: leading, it would read its relay into that stream. " +
          'A node of another cluster on the same NATS? Give each cluster its own --nats-name; if the whole cluster is moving to this upstream, nothing is wrong',
      );
    }
    return;
  }
}

function decodedOrUndefined(data: Uint8Array): StreamRecord | undefined {
  try {
    return decodeStreamRecord(data);
  } catch {
    return undefined;
  }
}
