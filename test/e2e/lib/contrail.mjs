// contrail as an operator runs it, through the tests' one helper for a contrail process
// (test/support/contrail-process.ts; scripts/test-e2e.mjs loads tsx for it): the compiled CLI,
// configured by flags, reporting where it listens through its pino JSON log, stopped with SIGTERM.
import { ContrailProcess } from '../../support/contrail-process.ts';

const HOST = '127.0.0.1';

/**
 * Starts `contrail serve` and resolves once both its /subscribe and /metrics ports are logged.
 * @param {{upstream: string, dataDir: string, extraArgs?: string[], startTimeoutMs?: number}} options
 */
export async function startContrail({ upstream, dataDir, extraArgs = [], startTimeoutMs = 30_000 }) {
  const contrail = ContrailProcess.serve(['--upstream', upstream, '--data-dir', dataDir, ...extraArgs]);
  let port;
  let metricsPort;
  try {
    port = await contrail.waitServing(startTimeoutMs);
    metricsPort = (await contrail.waitForLog('serving Prometheus metrics at /metrics', startTimeoutMs)).port;
  } catch (err) {
    contrail.child.kill('SIGKILL');
    throw err;
  }

  return {
    port,
    metricsPort,
    httpUrl: `http://${HOST}:${port}`,
    wsUrl: `ws://${HOST}:${port}`,
    // Every log line: they are the evidence when something goes wrong.
    logs: contrail.logs,
    stop: (timeoutMs) => contrail.stop(timeoutMs),
  };
}

/** Kills every contrail child that is still running (for after() hooks on the failure path). */
export const killAll = () => ContrailProcess.killAll();

/** Waits until contrail says it is ready (upstream connected, store healthy), bounded. */
export async function waitReady(httpUrl, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${httpUrl}/ready`);
      last = `${response.status} ${(await response.text()).trim()}`;
      if (response.status === 200) return;
    } catch (err) {
      last = err.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`contrail was not ready within ${timeoutMs} ms (last /ready: ${last})`);
}

export function tail(logs, count = 30) {
  return logs
    .slice(-count)
    .map((entry) => JSON.stringify(entry))
    .join('\n');
}
