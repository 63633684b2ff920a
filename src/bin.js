#!/usr/bin/env -S node --max-semi-space-size=64
// The `contrail` command: runs the TypeScript CLI through tsx, so no build step is needed.
// A 64 MiB young generation: ingest makes short-lived garbage fast, and the default one
// scavenged so often that the pauses set the tail of ingest-to-client latency (bench/fanout).
import { register } from 'tsx/esm/api';

register();
await import('./cli.ts');
