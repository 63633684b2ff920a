/**
 * The `contrail` command line. Every flag has an environment variable CONTRAIL_<FLAG_NAME>
 * (e.g. --metrics-port → CONTRAIL_METRICS_PORT); a flag on the command line wins.
 * Unknown flags and bad values print one line saying what is wrong and exit with code 2; a
 * command that fails while running (e.g. a data dir that is not an LMDB buffer) exits with 1.
 */
import yargs, { type Argv, type Options } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { hostname } from 'node:os';
import { INSPECT_OPTIONS, SERVE_OPTIONS, flagsFromEnvironment, type GatewayConfig } from './config.ts';

export function buildCli(argv: string[]): Argv {
  return yargs(argv)
    .scriptName('contrail')
    .usage('$0 [command] [flags]\n\nA Jetstream-compatible JSON firehose gateway for the AT Protocol.')
    .command(['serve', '$0'], 'Run the gateway (the default command)', (y) => y.options(SERVE_OPTIONS).config(environmentFlags(SERVE_OPTIONS, argv)), (args) =>
      failingWith1(async () => {
        const { runGateway } = await import('./gateway.ts');
        await runGateway(toConfig(args));
      }),
    )
    .command('inspect', "Print the buffer's span, size and saved upstream cursor", (y) => y.options(INSPECT_OPTIONS).config(environmentFlags(INSPECT_OPTIONS, argv)), (args) =>
      failingWith1(async () => {
        const { inspect } = await import('./inspect.ts');
        await inspect(args['data-dir'] as string);
      }),
    )
    .epilogue('Every flag can also be set in the environment as CONTRAIL_<FLAG>, e.g. CONTRAIL_METRICS_PORT=9100.')
    .strict()
    .help()
    .alias('help', 'h')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((message, err) => usageError(message ?? err?.message));
}

/** A bad flag or variable: one line saying what is wrong, exit code 2. */
function usageError(message: string): never {
  process.stderr.write(`contrail: ${message}\nRun "contrail --help" for the flags and their allowed values.\n`);
  process.exit(2);
}

function environmentFlags(options: Record<string, Options>, argv: string[]): Record<string, unknown> {
  try {
    return flagsFromEnvironment(options, argv);
  } catch (err) {
    usageError((err as Error).message);
  }
}

/** Runs a command; an error it throws is one line on stderr and exit code 1, not a usage error. */
async function failingWith1(run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    process.stderr.write(`contrail: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

function toConfig(args: Record<string, unknown>): GatewayConfig {
  return {
    upstream: args.upstream as string,
    ingestCollections: args['ingest-collections'] as string[],
    host: args.host as string,
    port: args.port as number,
    metricsHost: args['metrics-host'] as string,
    metricsPort: args['metrics-port'] as number,
    dataDir: args['data-dir'] as string,
    logLevel: args['log-level'] as GatewayConfig['logLevel'],
    retentionMs: args.retention as number,
    maxBufferBytes: args['max-buffer-bytes'] as number,
    hotCacheBytes: args['hot-cache-bytes'] as number,
    maxFrameBytes: args['max-frame-bytes'] as number,
    transport: args.transport as GatewayConfig['transport'],
    zstdDictionary: args['zstd-dictionary'] as string,
    maxSubscribers: args['max-subscribers'] as number,
    maxConnectionsPerIp: args['max-connections-per-ip'] as number,
    maxDeflateSubscribers: args['max-deflate-subscribers'] as number,
    slowConsumerWindowMs: args['slow-consumer-window'] as number,
    trustProxy: args['trust-proxy'] as number,
    fsync: args.fsync as boolean,
    verify: args.verify as GatewayConfig['verify'],
    verifyWorkers: args['verify-workers'] as number,
    verifyResyncs: args['verify-resyncs'] as number,
    verifyResyncMaxBytes: args['verify-resync-max-bytes'] as number,
    verifyResyncTimeoutMs: args['verify-resync-timeout'] as number,
    verifyResyncAttempts: args['verify-resync-attempts'] as number,
    plcUrl: args['plc-url'] as string,
    allowPrivateEndpoints: args['allow-private-endpoints'] as boolean,
    identityCacheEntries: args['identity-cache-entries'] as number,
    backfill: args.backfill as boolean,
    backfillMaxRepoBytes: args['backfill-max-repo-bytes'] as number,
    backfillTimeoutMs: args['backfill-timeout'] as number,
    backfillPerHost: args['backfill-per-host'] as number,
    backfillConcurrency: args['backfill-concurrency'] as number,
    backfillCacheBytes: args['backfill-cache-bytes'] as number,
    backfillCacheTtlMs: args['backfill-cache-ttl'] as number,
    cluster:
      args.nats === undefined
        ? undefined
        : {
            servers: args.nats as string[],
            replicas: args['nats-replicas'] as number,
            retentionMs: args['nats-retention'] as number,
            leaseMs: args['nats-lease'] as number,
            name: args['nats-name'] as string,
            nodeId: (args['node-id'] as string | undefined) ?? `${hostname()}-${process.pid}`,
          },
  };
}

await buildCli(hideBin(process.argv)).parseAsync();
