/**
 * The client side of bench/fanout, run as a child process so its CPU is not the server's:
 * opens N WebSocket connections, counts frames, and samples latency from each event's
 * time_us (or a `sent` field the baseline server adds) to its arrival.
 *
 *   IPC in:  {type:'connect', urls, latency, deflate, countOnly, raw}, {type:'reset', expected, gaps}, {type:'count'}, {type:'stats'}, {type:'gaps'}, {type:'stop'}
 *   IPC out: {type:'connected'}, {type:'done', frames, seconds, wireBytes}, {type:'latency', samples, timeUs},
 *            {type:'count', frames, sinceOpen}, {type:'stats', cpuMicros, loopDelayP99Ms, loopDelayMaxMs}, {type:'gaps', gaps}
 *
 * countOnly clients (bench/frame-counter.ts) count messages without parsing them (no latency, no
 * deflate): replaying clients, whose parsing would otherwise take the CPU the server is measured on.
 * `sinceOpen` is each one's count since its connection opened, resets aside: how far a replay got.
 * raw latency clients read frames the same way and only each message's first bytes, where time_us
 * is: no `ws` (its framing, UTF-8 check and copies) between the socket and the sample.
 * wireBytes counts what the TCP sockets read (frames as sent, compressed or not). `timeUs` pairs
 * each latency sample with its event, so a benchmark can split it at the server's send. `stats`
 * says whether this process itself got the CPU it needed since the last reset: its CPU time and
 * its own event loop's delay (a client that waits for the CPU measures that wait as latency).
 * A reset with `gaps` also records this process's main thread from then on (bench/loop-gaps.ts),
 * so a late arrival can be split into this process's GC, its running, and its wait for a core.
 */
import type { Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import { countingSocket } from './frame-counter.ts';
import { GapRecorder } from './loop-gaps.ts';

const EMPTY = Buffer.alloc(0);
/** time_us sits near the start of every event: {"did":"…","time_us":N,…} (a DID is at most ~60 bytes). */
const TIME_US_WITHIN = 120;

const sockets: WebSocket[] = [];
const countingSockets: Socket[] = [];
let expected = Infinity;
let received = 0;
/** Messages each countOnly connection received since it opened (a reset leaves them). */
const sinceOpen: number[] = [];
let started = 0;
let bytesAtReset = 0;
let latencyMode = false;
const latencies: number[] = [];
const latencyTimeUs: number[] = [];
const loopDelay = monitorEventLoopDelay({ resolution: 1 });
loopDelay.enable();
let cpuAtReset = process.cpuUsage();
let gapRecorder: GapRecorder | undefined;
const nowMicros = () => (performance.timeOrigin + performance.now()) * 1000;

process.on('message', (message: any) => void handle(message));

async function handle(message: any): Promise<void> {
  switch (message.type) {
    case 'connect': {
      latencyMode = message.latency ?? false;
      const urls: string[] = message.urls;
      if (message.countOnly) {
        for (const url of urls) {
          const connection = sinceOpen.push(0) - 1;
          countingSockets.push(
            await countingSocket(url, () => {
              sinceOpen[connection]!++;
              onFrame(EMPTY, true);
            }),
          );
        }
        process.send!({ type: 'connected' });
        break;
      }
      if (message.raw) {
        for (const url of urls) countingSockets.push(await countingSocket(url, (head, binary) => onFrame(head ?? EMPTY, binary), TIME_US_WITHIN));
        process.send!({ type: 'connected' });
        break;
      }
      await Promise.all(
        urls.map(
          (url) =>
            new Promise<void>((resolve, reject) => {
              const socket = new WebSocket(url, { perMessageDeflate: message.deflate ?? false });
              socket.on('open', () => resolve());
              socket.on('error', reject);
              socket.on('message', (data: Buffer, isBinary: boolean) => onFrame(data, isBinary));
              sockets.push(socket);
            }),
        ),
      );
      process.send!({ type: 'connected' });
      break;
    }
    case 'reset':
      expected = message.expected;
      received = 0;
      started = performance.now();
      bytesAtReset = bytesRead();
      latencies.length = 0;
      latencyTimeUs.length = 0;
      loopDelay.reset();
      cpuAtReset = process.cpuUsage();
      gapRecorder?.stop();
      gapRecorder = message.gaps ? new GapRecorder() : undefined;
      break;
    case 'gaps':
      process.send!({ type: 'gaps', gaps: gapRecorder?.stop() });
      gapRecorder = undefined;
      break;
    case 'latency':
      process.send!({ type: 'latency', samples: latencies, timeUs: latencyTimeUs });
      break;
    case 'stats': {
      const cpu = process.cpuUsage(cpuAtReset);
      const ms = (ns: number) => ns / 1e6;
      process.send!({ type: 'stats', cpuMicros: cpu.user + cpu.system, loopDelayP99Ms: ms(loopDelay.percentile(99)), loopDelayMaxMs: ms(loopDelay.max) });
      break;
    }
    case 'count':
      process.send!({ type: 'count', frames: received, sinceOpen });
      break;
    case 'stop':
      for (const socket of sockets) socket.terminate();
      for (const socket of countingSockets) socket.destroy();
      process.exit(0);
  }
}

function onFrame(data: Buffer, isBinary: boolean): void {
  received++;
  if (latencyMode && !isBinary) {
    const text = data.toString('latin1', 0, TIME_US_WITHIN);
    const at = text.indexOf('"time_us":');
    if (at >= 0) {
      const timeUs = Number(text.slice(at + 10, text.indexOf(',', at)));
      latencies.push(nowMicros() - timeUs);
      latencyTimeUs.push(timeUs);
    }
  }
  if (received === expected) {
    process.send!({ type: 'done', frames: received, seconds: (performance.now() - started) / 1000, wireBytes: bytesRead() - bytesAtReset });
  }
}

function bytesRead(): number {
  let total = 0;
  for (const socket of sockets) total += (socket as unknown as { _socket: Socket })._socket.bytesRead;
  for (const socket of countingSockets) total += socket.bytesRead;
  return total;
}
