/**
 * The clients of scripts/soak, in their own process so their CPU is not the gateway's. Opens the
 * connections it is told to, and every report interval sends back what they saw: frames, live
 * latency samples (arrival minus the event's time_us, from clients that are live), replay
 * progress, and close reasons.
 *
 *   IPC in:  {type:'open', clients: ClientSpec[]}, {type:'report'}, {type:'stop'}
 *   IPC out: {type:'opened', count}, {type:'report', ...}
 */
import WebSocket from 'ws';

interface ClientSpec {
  url: string;
  /** live: latency is sampled; replay: from an old cursor until caught up; slow: reads slowly. */
  role: 'live' | 'replay' | 'slow';
}

interface Client {
  spec: ClientSpec;
  socket: WebSocket;
  frames: number;
  openedAt: number;
  /** When a replaying client first received an event less than a second old. */
  caughtUpAt?: number;
  framesAtCatchUp?: number;
}

const clients: Client[] = [];
let latencies: number[] = [];
let frames = 0;
const closes = new Map<string, number>();
const nowMicros = () => (performance.timeOrigin + performance.now()) * 1000;

process.on('message', (message: { type: string; clients?: ClientSpec[] }) => {
  switch (message.type) {
    case 'open':
      for (const spec of message.clients!) open(spec);
      process.send!({ type: 'opened', count: message.clients!.length });
      break;
    case 'report': {
      const replays = clients
        .filter((c) => c.spec.role === 'replay')
        .map((c) => ({ frames: c.frames, seconds: ((c.caughtUpAt ?? performance.now()) - c.openedAt) / 1000, caughtUp: c.caughtUpAt !== undefined, framesAtCatchUp: c.framesAtCatchUp }));
      process.send!({ type: 'report', frames, latencies, replays, closes: Object.fromEntries(closes), open: clients.filter((c) => c.socket.readyState === WebSocket.OPEN).length });
      latencies = [];
      frames = 0;
      break;
    }
    case 'stop':
      for (const client of clients) client.socket.terminate();
      process.exit(0);
  }
});

function open(spec: ClientSpec): void {
  const socket = new WebSocket(spec.url, { perMessageDeflate: false });
  const client: Client = { spec, socket, frames: 0, openedAt: performance.now() };
  clients.push(client);
  socket.on('message', (data: Buffer) => {
    frames++;
    client.frames++;
    if (spec.role === 'slow') return;
    const text = data.toString('latin1', 0, 160);
    const at = text.indexOf('"time_us":');
    if (at < 0) return;
    const ageUs = nowMicros() - Number(text.slice(at + 10, text.indexOf(',', at)));
    if (spec.role === 'replay' && client.caughtUpAt === undefined && ageUs < 1_000_000) {
      client.caughtUpAt = performance.now();
      client.framesAtCatchUp = client.frames;
    }
    // Latency only from live clients (a replaying client's events are old on purpose); sampled.
    if (spec.role === 'live' && (frames & 7) === 0) latencies.push(ageUs / 1000);
  });
  socket.on('close', (code, reason) => {
    const key = `${code} ${reason.toString().split(':')[0]}`.trim();
    closes.set(key, (closes.get(key) ?? 0) + 1);
  });
  socket.on('error', () => {});
  // A slow client reads in bursts: paused most of the time, so the gateway's slow-consumer rule bites.
  if (spec.role === 'slow') {
    const raw = (socket as unknown as { _socket?: { pause(): void; resume(): void } });
    const timer = setInterval(() => {
      if (!raw._socket) return;
      raw._socket.pause();
      setTimeout(() => raw._socket?.resume(), 900);
    }, 1_000);
    socket.on('close', () => clearInterval(timer));
  }
}
