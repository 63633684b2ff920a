/**
 * scripts/soak: contrail against a synthetic upstream for a while, with many clients, and a
 * one-screen report.
 *
 *   npx tsx scripts/soak.ts [--minutes 20] [--rate 2000] [--clients 1000] [--replays 20] [--slow 10] [--replay-workers N]
 *
 * The upstream is a local WebSocket relay sending SyntheticFirehose frames (the network's mix)
 * at --rate events/s, from a pool made at the start (see POOL_FRAMES). contrail runs as `npm start` would, in its own process, on a temp data dir.
 * The clients run in another process: 20 unfiltered, a third of the rest wanting one collection,
 * the others a few DIDs each (live latency is sampled from all of them), --slow clients that read
 * in bursts at a tenth of the stream's pace, and halfway through, --replays clients at once from
 * the oldest cursor (a full replay of what was ingested so far, then live). Every 30 s it samples
 * contrail's /metrics, its /proc/<pid>/smaps and its data dir; at the end it prints events/s in and
 * out, RSS split by what holds it (see residentSplit) and disk over time, live latency p50/p99 per
 * interval, replay throughput, and disconnects and drops by reason.
 */
import * as dagCbor from '@ipld/dag-cbor';
import { fork, spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WebSocketServer, type WebSocket } from 'ws';
import { tempDir } from '../test/support/gateway.ts';
import { tidFor } from '../test/support/frames.ts';
import { SyntheticFirehose } from '../test/support/synthetic.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '20' },
    rate: { type: 'string', default: '2000' },
    clients: { type: 'string', default: '1000' },
    replays: { type: 'string', default: '20' },
    slow: { type: 'string', default: '10' },
    'replay-workers': { type: 'string' },
  },
});
const MINUTES = Number(values.minutes);
const RATE = Number(values.rate);
const CLIENTS = Number(values.clients);
const REPLAYS = Number(values.replays);
const SLOW = Number(values.slow);
/** contrail's --replay-workers, if given (else its default: none on two cores or fewer). */
const REPLAY_WORKERS = values['replay-workers'];
const SAMPLE_MS = Math.min(30_000, (MINUTES * 60_000) / 10);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

// The upstream: frames made as they are sent, at the rate, to whoever is connected.
const relay = new WebSocketServer({ host: '127.0.0.1', port: 0 });
await once(relay, 'listening');
const upstreamUrl = `ws://127.0.0.1:${(relay.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos`;
const sockets = new Set<WebSocket>();
relay.on('connection', (socket) => {
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
});
// Making a frame from scratch (CAR, MST proof, hashes) costs ~1 ms, far too slow for 2,000
// events/s beside contrail on a small machine. So a pool of frames is made once, and each send
// re-encodes a pooled frame's body with the next seq and a new, higher rev (~30 µs): the stream
// keeps the network's mix and sizes, and contrail takes every frame as new.
const POOL_FRAMES = 4_000;
const firehose = new SyntheticFirehose({ seed: 7, accounts: 50_000 });
const headers = ['#commit', '#identity', '#account'].map((type) => dagCbor.encode({ op: 1, t: type }));
const pool = firehose.frames(POOL_FRAMES).map((frame) => {
  const header = headers.find((h) => Buffer.from(frame.bytes.subarray(0, h.length)).equals(h));
  if (!header) throw new Error('a synthetic frame with an unexpected header');
  return { header, body: dagCbor.decode<Record<string, unknown>>(frame.bytes.subarray(header.length)), events: frame.events };
});
let framesSent = 0;
const nextFrame = () => {
  const pooled = pool[framesSent % POOL_FRAMES]!; // the pool holds POOL_FRAMES frames
  const seq = ++framesSent;
  const body: Record<string, unknown> = { ...pooled.body, seq };
  if (typeof body.rev === 'string') body.rev = tidFor(seq);
  return { bytes: Buffer.concat([pooled.header, dagCbor.encode(body)]), events: pooled.events };
};
let eventsSent = 0;
const startedAt = performance.now();
let behind = 0;
/** When contrail connected: the rate counts from there (frames sent to nobody would be lost). */
let upstreamSince: number | undefined;
const pump = setInterval(() => {
  if (sockets.size === 0) return;
  upstreamSince ??= performance.now();
  const due = (RATE * (performance.now() - upstreamSince)) / 1000;
  // At most 50 ms of frames per tick: a machine too busy to send frames at the rate falls behind
  // (reported) instead of blocking this process.
  const until = performance.now() + 50;
  while (eventsSent < due && performance.now() < until) {
    const frame = nextFrame();
    for (const socket of sockets) socket.send(frame.bytes);
    eventsSent += frame.events;
  }
  behind = Math.max(0, due - eventsSent);
}, 5);

// contrail, as npm start runs it: the compiled build (npm run build first; `npm run soak` does).
const dir = tempDir('contrail-soak-');
const dataFile = join(dir.path, 'data.mdb');
const gateway = spawn(
  process.execPath,
  ['--max-semi-space-size=64', 'dist/cli.js', 'serve', '--upstream', upstreamUrl, '--data-dir', dir.path, '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--max-connections-per-ip', String(CLIENTS + REPLAYS + SLOW + 10), '--max-subscribers', String(CLIENTS + REPLAYS + SLOW + 10), ...(REPLAY_WORKERS === undefined ? [] : ['--replay-workers', REPLAY_WORKERS])],
  { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
);
const ports = await new Promise<{ port: number; metricsPort: number }>((resolve, reject) => {
  let port = 0;
  createInterface({ input: gateway.stdout! }).on('line', (line) => {
    let record: { msg?: string; port?: number };
    try {
      record = JSON.parse(line);
    } catch {
      return;
    }
    if (record.msg?.startsWith('serving /subscribe on ') && record.port) port = record.port;
    if (record.msg === 'serving Prometheus metrics at /metrics' && record.port) resolve({ port, metricsPort: record.port });
  });
  gateway.on('exit', (code) => reject(new Error(`contrail exited (${code}) before serving`)));
});
const base = `ws://127.0.0.1:${ports.port}/subscribe`;
const progress = (text: string) => process.stderr.write(`soak ${Math.round((performance.now() - startedAt) / 1000)}s: ${text}\n`);
progress(`contrail serving on ${ports.port}, metrics on ${ports.metricsPort}`);

// The clients.
const clientProcess = fork(fileURLToPath(new URL('./soak-clients.ts', import.meta.url)), { execArgv: ['--import', 'tsx'] });
const send = (message: unknown) => clientProcess.send(message as never);
const next = <T>(type: string) => new Promise<T>((resolve) => {
  const listener = (message: { type: string }) => {
    if (message.type !== type) return;
    clientProcess.off('message', listener);
    resolve(message as T);
  };
  clientProcess.on('message', listener);
});
const COLLECTIONS = ['app.bsky.feed.post', 'app.bsky.feed.repost', 'app.bsky.graph.block', 'app.bsky.actor.profile', 'app.bsky.graph.*'];
const dids = Array.from({ length: 200 }, () => `did:plc:${Math.random().toString(36).slice(2).padEnd(24, 'a').slice(0, 24)}`);
const specs = Array.from({ length: CLIENTS }, (_, i) => {
  if (i < 20) return { url: base, role: 'live' };
  if (i % 3 === 0) return { url: `${base}?wantedCollections=${COLLECTIONS[i % COLLECTIONS.length]}`, role: 'live' };
  return { url: `${base}?${[0, 1, 2].map((k) => `wantedDids=${dids[(i * 3 + k) % dids.length]}`).join('&')}`, role: 'live' };
});
for (let i = 0; i < SLOW; i++) specs.push({ url: base, role: 'slow' });
const opened = next('opened');
send({ type: 'open', clients: specs });
await opened;
progress(`${specs.length} clients connecting`);

interface Report {
  frames: number;
  latencies: number[];
  replays: Array<{ frames: number; seconds: number; caughtUp: boolean; framesAtCatchUp?: number }>;
  closes: Record<string, number>;
  open: number;
}
const samples: Array<{ at: number; inPerS: number; outPerS: number; rssMB: number; anonMB: number; heapMB: number; externalMB: number; nativeMB: number; lmdbMB: number; lmdbMaps: number; codeMB: number; diskMB: number; p50: number; p99: number; events: number; gatewayCpu: number; gatewayMainCpu: number; clientsCpu: number; upstreamCpu: number; cpuPressure: number }> = [];
/**
 * The gateway's resident set by what holds it (Linux: /proc/<pid>/smaps): anonymous memory (the
 * JS heap, Buffers, native allocations) apart from file-backed pages — data.mdb's map (the OS's
 * page cache of the buffer file, clean once the background sync has written it, which the kernel
 * reclaims under memory pressure: not memory contrail holds) and the rest (code).
 */
const residentSplit = () => {
  const kB = { anon: 0, lmdb: 0, otherFile: 0 };
  let lmdbMaps = 0;
  let mapping = '';
  try {
    for (const line of readFileSync(`/proc/${gateway.pid}/smaps`, 'utf8').split('\n')) {
      const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (header) {
        mapping = header[1]!;
        if (mapping === dataFile) lmdbMaps++;
        continue;
      }
      const rss = /^Rss:\s+(\d+) kB/.exec(line)?.[1];
      const anonymous = /^Anonymous:\s+(\d+) kB/.exec(line)?.[1];
      if (anonymous !== undefined) kB.anon += Number(anonymous);
      if (rss === undefined || !mapping.startsWith('/')) continue;
      if (mapping === dataFile) kB.lmdb += Number(rss);
      else kB.otherFile += Number(rss);
    }
  } catch {
    return { anonMB: NaN, lmdbMB: NaN, lmdbMaps: NaN, codeMB: NaN };
  }
  return { anonMB: Math.round(kB.anon / 1000), lmdbMB: Math.round(kB.lmdb / 1000), lmdbMaps, codeMB: Math.round(kB.otherFile / 1000) };
};
/**
 * CPU-seconds a process (or thread) has used (Linux: /proc/<pid>/stat's utime + stime, in
 * USER_HZ = 100 ticks): the gateway's (and its main thread's), the clients' and this process's
 * (the upstream) share of the cores show which of them a slow replay waits for.
 */
const cpuSeconds = (stat: string) => {
  try {
    const fields = readFileSync(stat, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
};
/**
 * Microseconds in which some runnable task waited for a CPU (Linux pressure stall information,
 * /proc/pressure/cpu's "some" total): on a machine shared with other work, a sample whose
 * pressure is high measured the machine's contention as much as contrail.
 */
const cpuStalledMicros = () => {
  try {
    return Number(/^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
};
const cpuNow = () => {
  const own = process.cpuUsage();
  return {
    stalled: cpuStalledMicros() / 1e6,
    gateway: cpuSeconds(`/proc/${gateway.pid}/stat`),
    // Its main thread apart: ingest, live sends and (without replay workers) replays share it.
    gatewayMain: cpuSeconds(`/proc/${gateway.pid}/task/${gateway.pid}/stat`),
    clients: cpuSeconds(`/proc/${clientProcess.pid}/stat`),
    upstream: (own.user + own.system) / 1e6,
  };
};
let previous = { events: 0, sent: 0, at: performance.now(), cpu: cpuNow() };
let lastReport: Report | undefined;
let metricsText = '';
const metric = (name: string) => {
  let total = 0;
  for (const line of metricsText.split('\n')) if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) total += Number(line.split(' ').at(-1));
  return total;
};
const byLabel = (name: string, label: string) => {
  const out: Record<string, number> = {};
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const key = new RegExp(`${label}="([^"]*)"`).exec(line)?.[1];
    const value = Number(line.split(' ').at(-1));
    if (key !== undefined && value > 0) out[key] = (out[key] ?? 0) + value;
  }
  return out;
};
let replaysStarted = false;
const replayAt = performance.now() + (MINUTES * 60_000) / 2;
const endAt = performance.now() + MINUTES * 60_000;
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN; // NaN: no values
};

while (performance.now() < endAt) {
  await new Promise((resolve) => setTimeout(resolve, Math.min(SAMPLE_MS, endAt - performance.now())));
  if (!replaysStarted && performance.now() >= replayAt) {
    replaysStarted = true;
    const replays = Array.from({ length: REPLAYS }, () => ({ url: `${base}?cursor=1`, role: 'replay' }));
    send({ type: 'open', clients: replays });
    await next('opened');
    progress(`${REPLAYS} replays started`);
  }
  progress('sampling');
  metricsText = await (await fetch(`http://127.0.0.1:${ports.metricsPort}/metrics`)).text();
  const reported = next<Report>('report');
  send({ type: 'report' });
  lastReport = await reported;
  const now = performance.now();
  const events = metric('contrail_store_events_total');
  const sent = metric('contrail_events_sent_total');
  const seconds = (now - previous.at) / 1000;
  const split = residentSplit();
  const cpu = cpuNow();
  const cpuPercent = (which: keyof typeof cpu) => Math.round(((cpu[which] - previous.cpu[which]) / seconds) * 100);
  samples.push({
    at: Math.round((now - startedAt) / 1000),
    inPerS: Math.round((events - previous.events) / seconds),
    outPerS: Math.round((sent - previous.sent) / seconds),
    rssMB: Math.round(metric('process_resident_memory_bytes') / 1e6),
    ...split,
    heapMB: Math.round(metric('nodejs_heap_size_total_bytes') / 1e6),
    externalMB: Math.round(metric('nodejs_external_memory_bytes') / 1e6),
    nativeMB: Math.round(split.anonMB - metric('nodejs_heap_size_total_bytes') / 1e6 - metric('nodejs_external_memory_bytes') / 1e6),
    diskMB: Math.round(statSync(dataFile).size / 1e6),
    p50: percentile(lastReport.latencies, 0.5),
    p99: percentile(lastReport.latencies, 0.99),
    events,
    gatewayCpu: cpuPercent('gateway'),
    gatewayMainCpu: cpuPercent('gatewayMain'),
    clientsCpu: cpuPercent('clients'),
    upstreamCpu: cpuPercent('upstream'),
    cpuPressure: cpuPercent('stalled'),
  });
  const last = samples.at(-1)!;
  progress(`in ${last.inPerS} ev/s, out ${last.outPerS} frames/s, CPU % contrail ${last.gatewayCpu} (main thread ${last.gatewayMainCpu}) / clients ${last.clientsCpu} / upstream ${last.upstreamCpu}, CPU pressure ${last.cpuPressure} %, live p99 ${last.p99.toFixed(1)} ms, RSS ${last.rssMB} MB (anon ${last.anonMB}: JS heap ${last.heapMB}, Buffers ${last.externalMB}, native ${last.nativeMB}; LMDB map ${last.lmdbMB} in ${last.lmdbMaps} map(s), code ${last.codeMB})`);
  previous = { events, sent, at: now, cpu };
}

// The report: one screen.
const replays = lastReport?.replays ?? [];
const caughtUp = replays.filter((r) => r.caughtUp);
/** Each replay's events/s until it caught up, or until the end for one still behind (the figure either way). */
const replayRates = replays.map((r) => (r.framesAtCatchUp ?? r.frames) / r.seconds).sort((a, b) => a - b);
const replayedEach = replays.map((r) => r.framesAtCatchUp ?? r.frames).sort((a, b) => a - b);
const out: string[] = [];
out.push(`soak: ${MINUTES} min, upstream ${RATE} events/s (synthetic mix), ${CLIENTS} live clients + ${SLOW} slow, ${REPLAYS} replays from the oldest cursor at ${Math.round(MINUTES / 2)} min${REPLAY_WORKERS === undefined ? '' : `, --replay-workers ${REPLAY_WORKERS}`}`);
out.push('');
out.push('  t (s) | in ev/s | out frames/s | CPU % contrail (main) / clients / upstream | CPU pressure % | RSS MB | anon | JS heap | Buffers | native | LMDB map | code | disk MB | live p50 ms | live p99 ms');
for (const s of samples) {
  const mb = [s.rssMB, s.anonMB, s.heapMB, s.externalMB, s.nativeMB, s.lmdbMB, s.codeMB].map((v, i) => String(v).padStart([6, 4, 7, 7, 6, 8, 4][i]!)).join(' | ');
  const cpu = `${s.gatewayCpu} (${s.gatewayMainCpu}) / ${s.clientsCpu} / ${s.upstreamCpu}`.padStart(42);
  out.push(`${String(s.at).padStart(7)} | ${String(s.inPerS).padStart(7)} | ${String(s.outPerS).padStart(12)} | ${cpu} | ${String(s.cpuPressure).padStart(14)} | ${mb} | ${String(s.diskMB).padStart(7)} | ${s.p50.toFixed(1).padStart(11)} | ${s.p99.toFixed(1).padStart(11)}`);
}
out.push('(CPU: % of one core in the interval, each process with every thread; CPU pressure: % of the interval in which some task waited for a CPU; MB. anon = JS heap (committed) + Buffers + native (the rest: uWS send buffers, LMDB, zstd, malloc);');
out.push(` LMDB map = data.mdb's pages in the page cache, mapped ${samples.at(-1)?.lmdbMaps ?? 0} time(s) at the end: reclaimable once synced; code = other files)`);
out.push('');
out.push(`events: ${eventsSent.toLocaleString('en-US')} sent upstream (${Math.round(behind).toLocaleString('en-US')} behind the rate at the end), ${metric('contrail_store_events_total').toLocaleString('en-US')} stored; ${metric('contrail_events_sent_total').toLocaleString('en-US')} sent to clients`);
out.push(
  `replays: ${caughtUp.length}/${replays.length} caught up with live; ` +
    (replayRates.length > 0
      ? `events/s per replay (until caught up, or to the end): median ${Math.round(percentile(replayRates, 0.5)).toLocaleString('en-US')}, min ${Math.round(replayRates[0]!).toLocaleString('en-US')}; ` +
        `events replayed each: median ${Math.round(percentile(replayedEach, 0.5)).toLocaleString('en-US')}`
      : 'none started'),
);
out.push(`disconnects by reason (contrail): ${JSON.stringify(byLabel('contrail_subscriber_disconnects_total', 'reason'))}; still open (clients): ${lastReport?.open}`);
out.push(`upstream drops by reason: ${JSON.stringify(byLabel('contrail_ingest_drops_total', 'reason'))}; ingest skips: ${JSON.stringify(byLabel('contrail_ingest_skipped_total', 'reason'))}; events skipped for subscribers: ${JSON.stringify(byLabel('contrail_events_skipped_total', 'reason'))}`);
out.push(`client-side closes (code reason): ${JSON.stringify(lastReport?.closes ?? {})}`);
process.stdout.write(out.join('\n') + '\n');

clearInterval(pump);
send({ type: 'stop' });
gateway.kill('SIGTERM');
await once(gateway, 'exit');
relay.close();
dir.remove();
process.exit(0);
