// A real AT Protocol upstream for the end-to-end suite: a did:plc directory (@did-plc/server,
// in-memory) and a PDS (@atproto/pds 0.4.217, SQLite + disk blobs) in this process, on 127.0.0.1.
// The PDS serves the real com.atproto.sync.subscribeRepos firehose that contrail reads.
//
// Why 0.4.217: it is the last PDS line that runs on Node 20. Why in-process: start-up is ~1.5 s
// and there is nothing to install but npm packages (no Postgres, Redis or Docker).
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { once } from 'node:events';
import * as plc from '@did-plc/server';
import { PDS, envToCfg, envToSecrets } from '@atproto/pds';
import { Secp256k1Keypair } from '@atproto/crypto';

export const HOST = '127.0.0.1';

/** A port the kernel says is free on 127.0.0.1 (the PLC and PDS servers cannot take port 0). */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, HOST);
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// PlcServer.start() and PDS.start() call express's app.listen(port) without a host, which binds
// every interface. This suite must only ever listen on loopback, so while they start, a
// host-less listen() is given 127.0.0.1. The patch is undone before anything else runs.
async function listeningOnLoopback(start) {
  const original = net.Server.prototype.listen;
  net.Server.prototype.listen = function (...args) {
    const [first] = args;
    if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
      if (typeof args[1] !== 'string') args.splice(1, 0, HOST);
    } else if (first && typeof first === 'object' && first.path === undefined && !first.host) {
      args[0] = { ...first, host: HOST };
    }
    return original.apply(this, args);
  };
  try {
    return await start();
  } finally {
    net.Server.prototype.listen = original;
  }
}

/**
 * Starts PLC + PDS with their data under `dataDir` (which the caller owns and removes).
 * `pds` is the running PDS, for tests that reach into it (e.g. rotating a repo's signing key).
 * @returns {Promise<{pdsUrl: string, plcUrl: string, firehoseUrl: string, pds: PDS, close(): Promise<void>}>}
 */
export async function startNetwork({ dataDir }) {
  await fs.mkdir(dataDir, { recursive: true });
  const plcPort = await freePort();
  const pdsPort = await freePort();

  const plcServer = plc.PlcServer.create({ db: plc.Database.mock(), port: plcPort });
  await listeningOnLoopback(() => plcServer.start());
  const plcUrl = `http://${HOST}:${plcPort}`;

  // The same settings as the PDS_* environment variables (see @atproto/pds readEnv()).
  const rotationKey = await Secp256k1Keypair.create({ exportable: true });
  const env = {
    devMode: true, // http:// service URLs, relaxed checks for local use
    hostname: 'localhost',
    port: pdsPort,
    dataDirectory: dataDir,
    blobstoreDiskLocation: path.join(dataDir, 'blobs'),
    didPlcUrl: plcUrl,
    jwtSecret: 'e2e-jwt-secret-not-for-production',
    adminPassword: 'e2e-admin-password',
    plcRotationKeyK256PrivateKeyHex: Buffer.from(await rotationKey.export()).toString('hex'),
    inviteRequired: false,
    serviceHandleDomains: ['.test'], // accounts are alice.test, bob.test, ...
    disableSsrfProtection: true, // the PDS talks to the PLC on 127.0.0.1
    crawlers: [], // never ask a relay to crawl us: there is no network
  };
  const cfg = envToCfg(env);
  // publicUrl goes into every DID document; make it the address the PDS really listens on.
  cfg.service.publicUrl = `http://${HOST}:${pdsPort}`;
  let pds;
  try {
    pds = await PDS.create(cfg, envToSecrets(env));
    await listeningOnLoopback(() => pds.start());
  } catch (err) {
    await plcServer.destroy().catch(() => {});
    throw err;
  }
  const pdsUrl = `http://${HOST}:${pdsPort}`;

  let closing;
  return {
    pdsUrl,
    plcUrl,
    firehoseUrl: `ws://${HOST}:${pdsPort}/xrpc/com.atproto.sync.subscribeRepos`,
    pds,
    close() {
      closing ??= (async () => {
        await pds.destroy().catch(() => {});
        await plcServer.destroy().catch(() => {});
      })();
      return closing;
    },
  };
}
