/**
 * A WebSocket server in a process of its own, for tests that block their own event loop: it goes on
 * answering (pongs) while the test's process is stalled, as a healthy relay does while a gateway
 * stalls. It answers each ping after `pongDelayMs` and reports each ping it reads; a test sees how
 * many it has read, and when the next one comes.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { PROJECT_ROOT } from './contrail-process.ts';
import { waitUntil } from './poll.ts';

const SERVER = `
const { WebSocketServer } = require('ws');
const pongDelayMs = Number(process.argv[1]);
const server = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false });
server.on('listening', () => console.log('port ' + server.address().port));
server.on('connection', (socket) => {
  socket.on('error', () => socket.terminate());
  socket.on('ping', () => {
    console.log('ping');
    setTimeout(() => socket.readyState === socket.OPEN && socket.pong(), pongDelayMs);
  });
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

export interface RelayProcess {
  url: string;
  /** Pings read so far, on every connection. */
  readonly pings: number;
  /** Calls `fn` once, as soon as the next ping is reported (in the test's process, a moment after it was read). */
  onNextPing(fn: () => void): void;
  stop(): Promise<void>;
}

export async function startRelayProcess(options: { pongDelayMs: number }): Promise<RelayProcess> {
  // Run from the project, where `ws` resolves; it exits when its stdin closes, so a test that dies leaves nothing.
  const child = spawn(process.execPath, ['-e', SERVER, String(options.pongDelayMs)], { cwd: PROJECT_ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  let port: number | undefined;
  let pings = 0;
  const waiting: Array<() => void> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('port ')) port = Number(line.slice(5));
    if (line !== 'ping') return;
    pings++;
    for (const fn of waiting.splice(0)) fn();
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.stdin!.end();
    await exited;
  };
  try {
    await waitUntil(() => port !== undefined, 'the relay process to listen', 20_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    url: `ws://127.0.0.1:${port}/xrpc/com.atproto.sync.subscribeRepos`,
    get pings() {
      return pings;
    },
    onNextPing: (fn) => void waiting.push(fn),
    stop,
  };
}
