/**
 * The `contrail` command line. Every flag has an environment variable CONTRAIL_<FLAG_NAME>
 * (e.g. --metrics-port → CONTRAIL_METRICS_PORT); a flag on the command line wins.
 * Unknown flags, bad values, and a flag given twice or without its value print one line saying
 * what is wrong and exit with code 2; a command that fails while running (e.g. a data dir that is
 * not an LMDB buffer) exits with 1.
 */
import yargs, { type Argv, type InferredOptionTypes, type Options } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { hostname } from 'node:os';
import { INSPECT_OPTIONS, SERVE_OPTIONS, commandLineOptions, conflictingFlags, flagsFromEnvironment, repeatedBoolean, type GatewayConfig, type VerifyChoice } from './config.ts';

export function buildCli(argv: string[]): Argv {
  return yargs(argv)
    .scriptName('contrail')
    .usage('$0 [command] [flags]\n\nA Jetstream-compatible JSON firehose gateway for the AT Protocol.')
    .command(['serve', '$0'], 'Run the gateway (the default command)', (y) => y.options(commandLineOptions(SERVE_OPTIONS)).config(environmentFlags(SERVE_OPTIONS, argv)).check(refuseConflicts).check(() => refuseRepeated(SERVE_OPTIONS, argv)), (args) =>
      failingWith1(async () => {
        const { runGateway } = await import('./gateway.ts');
        await runGateway(toConfig(args));
      }),
    )
    .command('inspect', "Print the buffer's span, size and saved upstream cursor", (y) => y.options(commandLineOptions(INSPECT_OPTIONS)).config(environmentFlags(INSPECT_OPTIONS, argv)), (args) =>
      failingWith1(async () => {
        const { inspect } = await import('./inspect.ts');
        await inspect(args['data-dir']);
      }),
    )
    .epilogue('Every flag can also be set in the environment as CONTRAIL_<FLAG>, e.g. CONTRAIL_METRICS_PORT=9100.')
    // `-5h` is a value (`--retention -5h`, refused as a duration), not the short flags -5 and -h (the help).
    .parserConfiguration({ 'short-option-groups': false })
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
    usageError(messageOf(err));
  }
}

/** Flags that are each fine but not together: a usage error (yargs reports what check throws). */
function refuseConflicts(flags: { upstream: string; verify: VerifyChoice }): true {
  const conflict = conflictingFlags(flags);
  if (conflict) throw new Error(conflict);
  return true;
}

/** A boolean flag given twice: a usage error, as any other flag given twice is (commandLineOptions). */
function refuseRepeated(options: Record<string, Options>, argv: string[]): true {
  const repeated = repeatedBoolean(options, argv);
  if (repeated) throw new Error(repeated);
  return true;
}

/** Runs a command; an error it throws is one line on stderr and exit code 1, not a usage error. */
async function failingWith1(run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    process.stderr.write(`contrail: ${messageOf(err)}\n`);
    process.exit(1);
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The parsed `serve` flags (each coerced by its parser in config.ts) as the gateway's config. */
function toConfig(flags: InferredOptionTypes<typeof SERVE_OPTIONS>): GatewayConfig {
  return {
    upstream: flags.upstream,
    ingestCollections: flags['ingest-collections'],
    host: flags.host,
    port: flags.port,
    metricsHost: flags['metrics-host'],
    metricsPort: flags['metrics-port'],
    dataDir: flags['data-dir'],
    logLevel: flags['log-level'],
    retentionMs: flags.retention,
    maxBufferBytes: flags['max-buffer-bytes'],
    hotCacheBytes: flags['hot-cache-bytes'],
    replayWorkers: flags['replay-workers'],
    maxFrameBytes: flags['max-frame-bytes'],
    transport: flags.transport,
    zstdDictionary: flags['zstd-dictionary'],
    zstdReplayLevel: flags['zstd-replay-level'],
    maxSubscribers: flags['max-subscribers'],
    maxConnectionsPerIp: flags['max-connections-per-ip'],
    maxDeflateSubscribers: flags['max-deflate-subscribers'],
    slowConsumerWindowMs: flags['slow-consumer-window'],
    trustProxy: flags['trust-proxy'] ?? 0,
    fsync: flags.fsync,
    verify: flags.verify,
    verifyWorkers: flags['verify-workers'],
    verifyResyncs: flags['verify-resyncs'],
    verifyResyncMaxBytes: flags['verify-resync-max-bytes'],
    verifyResyncTimeoutMs: flags['verify-resync-timeout'],
    verifyResyncAttempts: flags['verify-resync-attempts'],
    verifyResyncRetryMs: flags['verify-resync-retry'],
    plcUrl: flags['plc-url'],
    allowPrivateEndpoints: flags['allow-private-endpoints'],
    identityCacheEntries: flags['identity-cache-entries'],
    backfill: flags.backfill,
    backfillMaxRepoBytes: flags['backfill-max-repo-bytes'],
    backfillTimeoutMs: flags['backfill-timeout'],
    backfillPerHost: flags['backfill-per-host'],
    backfillConcurrency: flags['backfill-concurrency'],
    backfillCacheBytes: flags['backfill-cache-bytes'],
    backfillCacheTtlMs: flags['backfill-cache-ttl'],
    cluster:
      flags.nats === undefined
        ? undefined
        : {
            servers: flags.nats,
            replicas: flags['nats-replicas'],
            retentionMs: flags['nats-retention'],
            leaseMs: flags['nats-lease'],
            name: flags['nats-name'],
            nodeId: flags['node-id'] ?? `${hostname()}-${process.pid}`,
            hopTimingFile: flags['nats-hop-timing'],
          },
  };
}

await buildCli(hideBin(process.argv)).parseAsync();
