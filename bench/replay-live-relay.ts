/**
 * The upstream side of bench/replay-live, run as a child process so its CPU is not the gateway's
 * (a deployed gateway's relay is another machine): a FakeRelay per case, fed the same synthetic
 * firehose commits (made once, at start) at a paced rate.
 *
 *   npx tsx bench/replay-live-relay.ts <frames>     (forked by bench/replay-live.ts)
 *   IPC in:  {type:'start'}, {type:'connected'}, {type:'push', from, count, rate}, {type:'stop'}
 *   IPC out: {type:'ready'} (frames made), {type:'started', url}, {type:'connected'}, {type:'pushed'}, {type:'stopped'}
 */
import { fileURLToPath } from 'node:url';
import { FakeRelay } from '../test/support/fake-relay.ts';
import { SyntheticFirehose } from '../test/support/synthetic.ts';
import { paced } from './fanout.ts';

/** The frames bench/replay-live feeds: the same seed and accounts in either process. */
export function relayFrames(count: number): Array<{ seq: number; bytes: Uint8Array }> {
  return new SyntheticFirehose({ seed: 5, accounts: 20_000 }).frames(count);
}

type Message = { type: 'start' } | { type: 'connected' } | { type: 'push'; from: number; count: number; rate: number } | { type: 'stop' };

if (fileURLToPath(import.meta.url) === process.argv[1]) {
  const frames = relayFrames(Number(process.argv[2]));
  let relay: FakeRelay | undefined;
  const reply = (message: object) => process.send!(message);
  process.on('message', (message: Message) => {
    void (async () => {
      switch (message.type) {
        case 'start':
          relay = await FakeRelay.start();
          return reply({ type: 'started', url: relay.url });
        case 'connected':
          await relay!.waitForConnections(1);
          return reply({ type: 'connected' });
        case 'push':
          await paced(message.count, message.rate, (i) => relay!.push(frames[message.from + i]!));
          return reply({ type: 'pushed' });
        case 'stop':
          await relay?.stop();
          relay = undefined;
          return reply({ type: 'stopped' });
      }
    })();
  });
  // The parent's exit ends this process too (its IPC channel closes).
  process.on('disconnect', () => process.exit(0));
  reply({ type: 'ready' });
}
