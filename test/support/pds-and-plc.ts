import { once } from 'node:events';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A PDS answering with `pdsHandler` and a PLC directory whose every DID document names that PDS,
 * as HTTP servers on 127.0.0.1; stop() closes both, open connections and all.
 */
export async function startPdsAndPlc(pdsHandler: RequestListener): Promise<{ pdsUrl: string; plcUrl: string; stop: () => void }> {
  const servers: Server[] = [];
  const listen = async (handler: RequestListener) => {
    const server = createServer(handler);
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const pdsUrl = await listen(pdsHandler);
  const plcUrl = await listen((req, res) => {
    const did = decodeURIComponent((req.url ?? '').slice(1));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: did, alsoKnownAs: [], service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: pdsUrl }] }));
  });
  return {
    pdsUrl,
    plcUrl,
    stop: () => {
      for (const server of servers) {
        server.closeAllConnections();
        server.close();
      }
    },
  };
}
