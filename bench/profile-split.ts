/** A CPU profile's samples charged to stages: the profiling benchmarks' split of where a thread's time went. */

/** What the split reads of a node:inspector CPU profile. */
export interface Profile {
  /** µs of the monotonic clock (as process.hrtime) at the first sample's delta. */
  startTime: number;
  nodes: Array<{ id: number; callFrame: { functionName: string }; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
}

/** Stages by the functions that run them, innermost first wins. */
export type Stages = Array<[stage: string, functions: string[]]>;

/**
 * µs per stage: every sample goes to the innermost function on its stack that a stage names, or to
 * 'other'. With `keep`, only the samples taken at the times it keeps (µs of the profile's clock).
 */
export function splitByStage(profile: Profile, stages: Stages, keep: (atMicros: number) => boolean = () => true): Map<string, number> {
  const parent = new Map<number, number>();
  const functionOf = new Map<number, string>();
  for (const node of profile.nodes) {
    functionOf.set(node.id, node.callFrame.functionName);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const micros = new Map<string, number>();
  let at = profile.startTime;
  profile.samples.forEach((sample, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (!keep(at)) return;
    let stage = 'other';
    for (let id: number | undefined = sample; id !== undefined && stage === 'other'; id = parent.get(id)) {
      const name = functionOf.get(id)!;
      stage = stages.find(([, functions]) => functions.includes(name))?.[0] ?? 'other';
    }
    micros.set(stage, (micros.get(stage) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return micros;
}
