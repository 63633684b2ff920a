// A front for the real PLC and PDS that misbehaves for chosen repos, for the backfill suite:
// the PLC front serves the real DID documents with their PDS endpoint pointed at the PDS front,
// which passes getRepo through to the real PDS, except for repos told to `truncate` (the first
// half of the real CAR as a complete response) or `stall` (headers never sent). Both listen on
// 127.0.0.1; contrail is given the PLC front's URL as --plc-url.
import http from 'node:http';
import { once } from 'node:events';
import { HOST } from './network.mjs';

export async function startPdsFront(network) {
  /** did → 'truncate' | 'stall' */
  const behaviour = new Map();
  const sockets = new Set();
  const listen = async (handler) => {
    const server = http.createServer((req, res) => handler(req, res).catch((err) => res.destroy(err)));
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    server.listen(0, HOST);
    await once(server, 'listening');
    return { server, url: `http://${HOST}:${server.address().port}` };
  };

  const pds = await listen(async (req, res) => {
    const url = new URL(req.url, network.pdsUrl);
    const did = url.searchParams.get('did');
    if (url.pathname === '/xrpc/com.atproto.sync.getRepo' && behaviour.get(did) === 'stall') return; // never answers
    const upstream = await fetch(url);
    const body = Buffer.from(await upstream.arrayBuffer());
    if (url.pathname === '/xrpc/com.atproto.sync.getRepo' && behaviour.get(did) === 'truncate') {
      res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' });
      res.end(body.subarray(0, body.length >> 1));
      return;
    }
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' });
    res.end(body);
  });

  const plc = await listen(async (req, res) => {
    const upstream = await fetch(new URL(req.url, network.plcUrl));
    const text = await upstream.text();
    if (upstream.status !== 200) {
      res.writeHead(upstream.status, { 'content-type': 'application/json' });
      res.end(text);
      return;
    }
    const document = JSON.parse(text);
    for (const service of document.service ?? []) if (service.id === '#atproto_pds') service.serviceEndpoint = pds.url;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(document));
  });

  return {
    plcUrl: plc.url,
    pdsUrl: pds.url,
    behaviour,
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all([pds.server, plc.server].map((server) => new Promise((resolve) => server.close(resolve))));
    },
  };
}
