/**
 * An ingest run that reads nothing, for tests of a cluster node's own machinery (joinCluster):
 * its lease, its follower and its failure, with no relay. Connected, so the node's problems
 * name only what the test is about.
 */
import type { IngestRun } from '../../src/cluster/index.ts';

export function idleIngest(): IngestRun {
  return { connected: true, problem: undefined, notIngesting: undefined, stop: async () => true, abandon() {} };
}
