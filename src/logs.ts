/**
 * Logs for machines and for people. JSON lines (pino) are the default, for log collectors; when
 * stdout is a terminal the same records print as readable, coloured lines (pino-pretty, in this
 * thread, so a line is out before the process exits). A one-line status every minute says what
 * the gateway is doing, so a healthy log is never silent for long.
 */
import { pino, type Logger } from 'pino';
import { build as prettyStream } from 'pino-pretty';
import { oldestOrUnreadable, UnreadableBufferError, type EventStore } from './store/index.ts';

export function createLogger(level: string, stdout: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout): Logger {
  if (!stdout.isTTY) return pino({ level }, stdout);
  const pretty = prettyStream({ destination: stdout, sync: true, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
  return pino({ level }, pretty);
}

export interface StatusSources {
  store: EventStore;
  subscribers: () => number;
  /** Seconds between the newest durable upstream event and now; undefined before the first. */
  upstreamLagSeconds: () => Promise<number | undefined>;
  /** Whether this node reads the relay now: a cluster node only while it leads. */
  readsUpstream: () => boolean;
}

/** Logs one status line every intervalMs: events/s in, subscribers, upstream lag, buffer span. */
export function startStatusLog(logger: Logger, sources: StatusSources, intervalMs = 60_000): { stop(): void } {
  let eventsIn = 0;
  sources.store.onCommitted((entries) => (eventsIn += entries.length));
  let since = performance.now();
  const logStatus = async () => {
    const now = performance.now();
    const eventsPerSecond = Math.round((eventsIn * 1000) / (now - since));
    eventsIn = 0;
    since = now;
    const buffer = bufferStatus(sources.store);
    const lag = await sources.upstreamLagSeconds();
    const lagSeconds = lag !== undefined && Number.isFinite(lag) ? lag : undefined;
    const subscribers = sources.subscribers();
    const lagText = !sources.readsUpstream()
      ? 'following the cluster stream (not reading the relay)'
      : lagSeconds === undefined
        ? 'no upstream event yet'
        : `upstream lag ${lagSeconds.toFixed(1)}s`;
    const { bufferEvents } = buffer;
    const bufferText = 'bufferUnreadable' in buffer ? `buffer unreadable (${buffer.bufferUnreadable})` : `buffer ${duration(buffer.bufferSeconds)}`;
    const fields = { status: true, eventsPerSecond, subscribers, upstreamLagSeconds: lagSeconds, ...buffer };
    const text = `status: ${eventsPerSecond.toLocaleString('en')} events/s in, ${subscribers.toLocaleString('en')} subscribers, ${lagText}, ${bufferText} (${bufferEvents.toLocaleString('en')} events)`;
    // A buffer that cannot be read stays in view: a warning every interval, after the store's one error line.
    if ('bufferUnreadable' in buffer) logger.warn(fields, text);
    else logger.info(fields, text);
  };
  const timer = setInterval(() => void logStatus(), intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/**
 * How many seconds of events the buffer spans and how many it holds; or, when its oldest event
 * cannot be read (a page of the block directory damaged on disk), why, with the events it holds.
 */
function bufferStatus(store: EventStore): { bufferSeconds: number; bufferEvents: number } | { bufferUnreadable: string; bufferEvents: number } {
  const bufferEvents = store.size().eventCount;
  const oldest = oldestOrUnreadable(store);
  if (oldest instanceof UnreadableBufferError) return { bufferUnreadable: oldest.message, bufferEvents };
  const oldestTimeUs = oldest?.timeUs;
  const { newestTimeUs } = store;
  return { bufferSeconds: oldestTimeUs === undefined || newestTimeUs === undefined ? 0 : Math.round((newestTimeUs - oldestTimeUs) / 1e6), bufferEvents };
}

/** 90061 → "1d 1h 1m", 59 → "59s". */
export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['m', 60]] as const) {
    const count = Math.floor(seconds / size);
    if (count > 0 || parts.length > 0) parts.push(`${count}${unit}`);
    seconds -= count * size;
  }
  return parts.join(' ');
}
