/**
 * Real nats-server processes (Debian's nats-server) on 127.0.0.1 for the cluster tests: one
 * server, or a JetStream cluster of several with routes between them. Each server can be
 * killed and restarted on its own ports and store dir, as an operator's would be.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { decodeStreamRecord, type StreamRecord } from '../../src/cluster/stream-record.ts';
import { tempDir } from './gateway.ts';
import { waitUntil } from './subscribe-client.ts';

/** Every nats-server started here and not exited yet, and every cluster's directory not removed yet. */
const runningServers = new Set<ChildProcess>();
const clusterDirs = new Set<{ remove(): void }>();
// A test or benchmark that dies without stopping its clusters (a failure, or a signal taken by
// exitOnStopSignals) must not leave nats-server running, nor its store on disk.
// A directory that cannot be removed yet (a server killed just now may still be writing to it) is
// left: a throw here would skip the exit handlers after this one.
process.once('exit', () => {
  for (const child of runningServers) child.kill('SIGKILL');
  for (const dir of clusterDirs) {
    try {
      dir.remove();
    } catch {
      // left for the system to clear
    }
  }
});

/** Why cluster tests cannot run here, or undefined when nats-server is installed (.ci/run installs it). */
export function natsServerMissing(): string | undefined {
  const probe = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  return probe.error ? 'nats-server is not installed (apt-get install nats-server; .ci/run does)' : undefined;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface ServerSlot {
  name: string;
  port: number;
  routePort: number;
  /** nats-server's monitoring endpoint (/connz: the clients connected to it). */
  monitorPort: number;
  config: string;
  /** How it is launched: nats-server's niceness, and GOGC if set (bench/cluster's --nats-nice and --nats-gogc). */
  launch: NatsLaunch;
  process?: ChildProcess;
  /** Set once the running process exited and its whole log is read. */
  exited?: boolean;
  log: string[];
}

/** How bench/cluster runs nats-server beside the nodes, to measure what a deployment could set; the tests take the defaults. */
export interface NatsLaunch {
  /** The niceness it runs at (`nice -n`; below 0 needs root): its scheduling priority against the contrail processes on the same cores. */
  nice?: number;
  /** The Go runtime's GOGC: how much its heap grows before a collection (100 by default). */
  gogc?: number;
}

export class NatsCluster {
  readonly #dir = tempDir('contrail-nats-');

  private constructor(readonly servers: ServerSlot[]) {
    clusterDirs.add(this.#dir);
  }

  /**
   * `size` servers; `maxPayload` sets nats-server's max_payload (e.g. '64KB'), NATS's default (1MB)
   * otherwise; `launch` how each server process runs (NatsLaunch). A port found free can be taken before its server binds it (by a connection's
   * local end, on a busy machine): such a start is retried on new ports.
   */
  static async start(size: number, options: { maxPayload?: string; launch?: NatsLaunch } = {}): Promise<NatsCluster> {
    for (let attempt = 1; ; attempt++) {
      const cluster = await NatsCluster.#configure(size, options);
      try {
        await cluster.waitReady();
        return cluster;
      } catch (err) {
        const lostPort = cluster.servers.some((slot) => slot.log.some((line) => /address already in use/.test(line)));
        await cluster.stop();
        if (!lostPort || attempt === 3) throw err;
      }
    }
  }

  static async #configure(size: number, options: { maxPayload?: string; launch?: NatsLaunch }): Promise<NatsCluster> {
    const slots: ServerSlot[] = [];
    for (let i = 0; i < size; i++) {
      slots.push({ name: `n${i + 1}`, port: await freePort(), routePort: await freePort(), monitorPort: await freePort(), config: '', launch: options.launch ?? {}, log: [] });
    }
    const cluster = new NatsCluster(slots);
    for (const slot of slots) {
      const store = join(cluster.#dir.path, slot.name);
      mkdirSync(store, { recursive: true });
      const routes = slots.filter((other) => other !== slot).map((other) => `nats-route://127.0.0.1:${other.routePort}`);
      const clusterBlock = size > 1 ? `cluster { name: contrail-test, listen: 127.0.0.1:${slot.routePort}, routes: [${routes.join(', ')}] }` : '';
      slot.config = join(cluster.#dir.path, `${slot.name}.conf`);
      const maxPayload = options.maxPayload ? `max_payload: ${options.maxPayload}\n` : '';
      writeFileSync(
        slot.config,
        `server_name: ${slot.name}\nlisten: 127.0.0.1:${slot.port}\nhttp: 127.0.0.1:${slot.monitorPort}\n${maxPayload}jetstream { store_dir: "${store}", max_memory_store: 64MB, max_file_store: 2GB }\n${clusterBlock}\n`,
      );
    }
    for (const slot of slots) cluster.#launch(slot);
    return cluster;
  }

  /** Every server's client URL, as a --nats value lists them. */
  get urls(): string[] {
    return this.servers.map((slot) => `nats://127.0.0.1:${slot.port}`);
  }

  /** Resolves once JetStream answers on every running server (a meta leader is elected). */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    for (const slot of this.servers.filter((s) => s.process)) {
      await waitUntil(
        async () => {
          if (slot.exited) throw new Error(`nats-server ${slot.name} exited (log: ${slot.log.slice(-3).join(' | ')})`);
          try {
            const nc = await connect({ servers: `127.0.0.1:${slot.port}`, reconnect: false, timeout: 1_000 });
            try {
              await (await jetstreamManager(nc, { timeout: 2_000 })).getAccountInfo();
              return true;
            } finally {
              await nc.close();
            }
          } catch {
            return false;
          }
        },
        `JetStream ready on ${slot.name} (log: ${slot.log.slice(-5).join(' | ')})`,
        timeoutMs,
      );
    }
  }

  /** The names of the clients connected to server `index` now, as its monitoring endpoint lists them (a contrail node's is `contrail <node id>`). */
  async clientNames(index = 0): Promise<string[]> {
    const response = await fetch(`http://127.0.0.1:${this.servers[index]!.monitorPort}/connz`);
    const { connections } = (await response.json()) as { connections?: Array<{ name?: string }> };
    return (connections ?? []).map((connection) => connection.name ?? '');
  }

  kill(index: number): void {
    this.servers[index]!.process?.kill('SIGKILL');
    this.servers[index]!.process = undefined;
  }

  restart(index: number): void {
    this.#launch(this.servers[index]!);
  }

  /** Kills server `index` and deletes its JetStream storage, as a server whose disk was not kept (a container without a volume) loses it: restarted, it holds no stream. */
  async killLosingStorage(index: number): Promise<void> {
    const child = this.servers[index]!.process;
    this.kill(index);
    if (child && child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    const store = join(this.#dir.path, this.servers[index]!.name);
    rmSync(store, { recursive: true, force: true });
    mkdirSync(store);
  }

  async stop(): Promise<void> {
    const running = this.servers.map((slot) => slot.process).filter((p): p is ChildProcess => p !== undefined && p.exitCode === null);
    for (const child of running) child.kill('SIGKILL');
    await Promise.all(running.map((child) => once(child, 'exit')));
    this.#dir.remove();
    clusterDirs.delete(this.#dir);
  }

  #launch(slot: ServerSlot): void {
    const { nice, gogc } = slot.launch;
    // Under nice(1), so that every thread the Go runtime starts has the niceness (a renice of the pid reaches only its first thread).
    const command = nice === undefined ? ['nats-server'] : ['nice', '-n', String(nice), 'nats-server'];
    const env = gogc === undefined ? process.env : { ...process.env, GOGC: String(gogc) };
    const child = spawn(command[0]!, [...command.slice(1), '-c', slot.config], { stdio: ['ignore', 'ignore', 'pipe'], env });
    runningServers.add(child);
    child.once('exit', () => runningServers.delete(child));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      slot.log.push(...text.trim().split('\n'));
      if (slot.log.length > 200) slot.log.splice(0, slot.log.length - 200);
    });
    slot.process = child;
    slot.exited = false;
    child.on('close', () => {
      if (slot.process === child) slot.exited = true;
    });
  }
}

/** Every record in a cluster's event stream, oldest first, read through `nc`. */
export async function readStreamRecords(nc: NatsConnection, streamName: string): Promise<StreamRecord[]> {
  const { state } = await (await jetstreamManager(nc)).streams.info(streamName);
  const messages = await (await jetstream(nc).consumers.get(streamName)).consume();
  const records: StreamRecord[] = [];
  for await (const message of messages) {
    records.push(decodeStreamRecord(message.data));
    if (message.seq >= state.last_seq) break;
  }
  await messages.close();
  return records;
}
