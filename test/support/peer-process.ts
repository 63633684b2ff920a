/**
 * A WebSocket peer in a process of its own, for tests that block their own event loop: it goes on
 * answering (pongs) while the test's process is stalled, as a healthy relay or subscriber does
 * while a gateway stalls. It answers each ping after `pongDelayMs` and reports each ping it reads;
 * a test sees how many it has read, when the next one comes, and whether the connection closed.
 * startRelayProcess is a relay (a server) to point a client at; startSubscriberProcess a client
 * of a gateway's /subscribe.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { PROJECT_ROOT } from './contrail-process.ts';
import { waitUntil } from './poll.ts';

const ANSWER = `
const answer = (socket, pongDelayMs) => {
  socket.on('error', () => socket.terminate());
  socket.on('ping', () => {
    console.log('ping');
    setTimeout(() => socket.readyState === socket.OPEN && socket.pong(), pongDelayMs);
  });
};
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

const RELAY = `${ANSWER}
const { WebSocketServer } = require('ws');
const server = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false });
server.on('listening', () => console.log('port ' + server.address().port));
server.on('connection', (socket) => answer(socket, Number(process.argv[1])));
`;

const SUBSCRIBER = `${ANSWER}
const WebSocket = require('ws');
const socket = new WebSocket(process.argv[2], { autoPong: false });
answer(socket, Number(process.argv[1]));
socket.on('open', () => console.log('open'));
socket.on('close', (code) => console.log('close ' + code));
`;

export interface PeerProcess {
  /** Pings read so far (the relay: on every connection). */
  readonly pings: number;
  /** The close code the subscriber's connection ended with; undefined while open (and for the relay). */
  readonly closeCode: number | undefined;
  /** Calls `fn` once, as soon as the next ping is reported (in the test's process, a moment after it was read). */
  onNextPing(fn: () => void): void;
  stop(): Promise<void>;
}

export async function startRelayProcess(options: { pongDelayMs: number }): Promise<PeerProcess & { url: string }> {
  const peer = startPeer(RELAY, [String(options.pongDelayMs)]);
  await peer.waitFor((lines) => lines.some((line) => line.startsWith('port ')), 'the relay process to listen');
  const port = Number(peer.lines.find((line) => line.startsWith('port '))!.slice(5));
  return Object.assign(peer.peer, { url: `ws://127.0.0.1:${port}/xrpc/com.atproto.sync.subscribeRepos` });
}

export async function startSubscriberProcess(options: { url: string; pongDelayMs: number }): Promise<PeerProcess> {
  const peer = startPeer(SUBSCRIBER, [String(options.pongDelayMs), options.url]);
  await peer.waitFor((lines) => lines.includes('open'), 'the subscriber process to connect');
  return peer.peer;
}

function startPeer(script: string, args: string[]): { peer: PeerProcess; lines: string[]; waitFor(done: (lines: string[]) => boolean, what: string): Promise<void> } {
  // Run from the project, where `ws` resolves; it exits when its stdin closes, so a test that dies leaves nothing.
  const child = spawn(process.execPath, ['-e', script, ...args], { cwd: PROJECT_ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiting: Array<() => void> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    if (line === 'ping') for (const fn of waiting.splice(0)) fn();
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.stdin!.end();
    await exited;
  };
  const peer: PeerProcess = {
    get pings() {
      return lines.filter((line) => line === 'ping').length;
    },
    get closeCode() {
      const closed = lines.find((line) => line.startsWith('close '));
      return closed === undefined ? undefined : Number(closed.slice(6));
    },
    onNextPing: (fn) => void waiting.push(fn),
    stop,
  };
  const waitFor = async (done: (lines: string[]) => boolean, what: string) => {
    try {
      await waitUntil(() => done(lines), what, 20_000);
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
  };
  return { peer, lines, waitFor };
}
