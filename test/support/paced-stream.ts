/**
 * A stream that runs past a reader that stopped reading while other readers keep up, without
 * those readers ever counting as slow, however loaded the machine. The slow-consumer rule
 * judges only subscribers behind the tip (blocked: a send passed the high-water mark; or
 * replaying), and a live subscriber is blocked only when more than highWaterBytes wait in its
 * send buffer. So each burst carries fewer bytes than the mark, and the next one is made only
 * once every keeping-up reader has received all of it (nothing of it is left in their send
 * buffers): they are never blocked, never judged. On a loaded machine the stream slows down
 * with its readers instead of outrunning them; the reader that stopped is judged all the same.
 */
import { waitUntil } from './poll.ts';

export interface PacedStream {
  /** Makes one burst upstream, fewer bytes than the server's high-water mark. */
  burst(): void;
  /** Whether every reader that keeps up has received all bursts so far. */
  received(): boolean;
  /** Whether to stop, asked after each burst was received. */
  done(): Promise<boolean>;
  /** What the stream runs until, for the timeout's message. */
  until: string;
  /** A hang guard, not a timing assertion. */
  timeoutMs: number;
}

export async function runPacedStream({ burst, received, done, until, timeoutMs }: PacedStream): Promise<void> {
  await waitUntil(
    async () => {
      burst();
      await waitUntil(received, 'the readers that keep up to receive the burst');
      return done();
    },
    until,
    timeoutMs,
  );
}
