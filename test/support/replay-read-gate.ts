/**
 * Decides when each replay read reaches the replay worker, and when its answer reaches the hub. A
 * worker at nice 19 on a busy core reads late, and what happens meanwhile (a commit, a trim)
 * decides what the read sees and what the hub finds when the answer comes; tests make such an
 * interleaving happen every time: `before(request)` runs as the hub asks for a read, the read
 * goes to the real worker once it resolves, and `after(request)` runs before the answer is
 * handed back. The hub, the worker and the store are untouched.
 */
import type { ReplayPool, ReplayRequest } from '../../src/server/replay-pool.ts';

export type ReadRequest = Omit<ReplayRequest, 'id'>;

export interface ReadGate {
  before?: (request: ReadRequest) => Promise<void>;
  after?: (request: ReadRequest) => Promise<void>;
}

/** Runs the gate's steps around every read the pool is asked for, until the returned function is called. */
export function gateReplayReads(pool: ReplayPool, gate: ReadGate): () => void {
  const read = pool.read.bind(pool);
  pool.read = async (request) => {
    await gate.before?.(request);
    const answer = await read(request);
    await gate.after?.(request);
    return answer;
  };
  return () => {
    pool.read = read;
  };
}
