// A relay in front of the PDS that passes its firehose through unchanged — except the commits
// it was told to corrupt, the way a hostile or broken relay could: a forged signature, a
// broken MST proof, a rev that is not the signed one. It proves that `--verify full` catches
// what the real PDS did not sign. Loopback only; one upstream connection per client, resuming
// at the client's cursor.
import { once } from 'node:events';
import { WebSocket, WebSocketServer } from 'ws';
import { decodeFrame, encodeCommitFrame, withBadSignature, withWrongPrevData, withWrongRev } from '../../support/tamper.mjs';

const CORRUPTIONS = { signature: withBadSignature, proof: withWrongPrevData, rev: withWrongRev };

export async function startCorruptingRelay(upstreamUrl) {
  /** did → corruptions to apply to its next commits that write records, in order */
  const planned = new Map();
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const relay = {
    url: `ws://127.0.0.1:${server.address().port}/xrpc/com.atproto.sync.subscribeRepos`,
    /** Commits corrupted so far: {did, kind, seq, rev}. */
    corrupted: [],
    /** Corrupts the next commit of `did` that has ops with `kind` (signature, proof or rev). */
    corruptNext(did, kind) {
      if (!CORRUPTIONS[kind]) throw new Error(`unknown corruption ${kind}`);
      planned.set(did, [...(planned.get(did) ?? []), kind]);
    },
    async close() {
      for (const client of server.clients) client.terminate();
      await new Promise((resolve) => server.close(resolve));
    },
  };

  const transform = async (bytes) => {
    const { header, body } = decodeFrame(bytes);
    if (header.t !== '#commit') return bytes;
    const kinds = planned.get(body.repo);
    if (!kinds?.length || body.ops.length === 0) return bytes;
    const kind = kinds.shift();
    relay.corrupted.push({ did: body.repo, kind, seq: body.seq, rev: body.rev });
    return encodeCommitFrame(await CORRUPTIONS[kind](body));
  };

  server.on('connection', (client, request) => {
    const url = new URL(upstreamUrl);
    const cursor = new URL(request.url, 'http://relay').searchParams.get('cursor');
    if (cursor !== null) url.searchParams.set('cursor', cursor);
    const upstream = new WebSocket(url);
    let chain = Promise.resolve(); // frames stay in order while one is being corrupted
    upstream.on('message', (data) => {
      chain = chain.then(async () => client.send(await transform(data)));
    });
    upstream.on('close', () => client.close());
    upstream.on('error', () => client.terminate());
    client.on('close', () => upstream.close());
  });
  return relay;
}
