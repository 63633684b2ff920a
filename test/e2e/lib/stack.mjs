// Everything one e2e suite runs against: a temp dir, the PLC + PDS, and contrail reading the
// PDS's firehose. close() undoes all of it and is safe to call after a failed start.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Activity } from './activity.mjs';
import { killAll, startContrail, waitReady } from './contrail.mjs';
import { startNetwork } from './network.mjs';

/** contrailArgs: extra flags, or a function of the network ({pdsUrl, plcUrl, …}) that returns (a promise of) them. */
export async function startStack({ contrailArgs = [] } = {}) {
  const stack = {
    // scripts/test-e2e.mjs gives each run a folder it removes even if this process is killed.
    tmp: await fs.mkdtemp(path.join(process.env.E2E_TMPDIR ?? os.tmpdir(), 'contrail-e2e-')),
    network: undefined,
    contrail: undefined,
    act: undefined,
    /** Starts contrail (again) on the same data dir and waits until it reads the upstream. */
    async startContrail() {
      const extraArgs = typeof contrailArgs === 'function' ? await contrailArgs(stack.network) : contrailArgs;
      stack.contrail = await startContrail({ upstream: stack.network.firehoseUrl, dataDir: path.join(stack.tmp, 'contrail'), extraArgs });
      // Ready = upstream connected. The PDS firehose starts live, so writes must come after this.
      await waitReady(stack.contrail.httpUrl);
      return stack.contrail;
    },
    async close() {
      await stack.contrail?.stop().catch(() => {});
      await killAll();
      await stack.network?.close();
      await fs.rm(stack.tmp, { recursive: true, force: true });
    },
  };
  try {
    stack.network = await startNetwork({ dataDir: path.join(stack.tmp, 'pds') });
    stack.act = new Activity(stack.network.pdsUrl);
    await stack.startContrail();
  } catch (err) {
    await stack.close();
    throw err;
  }
  return stack;
}
