/**
 * The layering of src/, checked by dependency-cruiser in `npm test` and CI.
 *
 * STAGES is the one place the stage order is defined: the data path, first to last. A stage may
 * import only stages listed before it, and another stage only through its entry point
 * (`<stage>/index.ts`). `threads` and `atproto` come first: they are the neutral folders (worker
 * thread pools; protocol primitives) that every stage may use and that import no stage. A stage
 * may also offer a narrower entry point, `index.<part>.ts` (store's index.reads.ts), for a worker
 * thread that must not load the whole stage at each start. The files directly in src/ (gateway,
 * cli, config, inspect) sit on top and may import any stage, also only through entry points.
 * A new stage folder must be added here, where the data flows through it; until it is, the
 * `unknown-stage` rule fails and says so. Tests and benchmarks are not checked: they may reach
 * any module they exercise.
 */
const STAGES = ['threads', 'atproto', 'identity', 'upstream', 'verify', 'events', 'store', 'cluster', 'backfill', 'server'];

const anyStage = STAGES.join('|');

/** A stage's entry point: index.ts, or a narrower index.<part>.ts, not a test (one repetition: dependency-cruiser refuses nested ones as unsafe). */
const ENTRY_POINT = '^src/[^/]+/index\\.(?![a-z.-]*test\\.ts$)[a-z.-]*ts$';

/** One rule per stage: nothing it imports may come from a later stage or from the top level. */
const upwardRules = STAGES.map((stage, rank) => ({
  name: `upward-from-${stage}`,
  comment: `src/${stage} may import only ${rank === 0 ? 'no stage' : STAGES.slice(0, rank).join(', ')} (the stages before it): see STAGES in scripts/dependency-rules.cjs`,
  severity: 'error',
  from: { path: `^src/${stage}/` },
  to: { path: `^src/(${[...STAGES.slice(rank + 1), '[^/]+\\.[jt]s$'].join('|')})` },
}));

module.exports = {
  forbidden: [
    ...upwardRules,
    {
      name: 'past-entry-point',
      comment: "another stage's files are reached only through its index.ts (or a narrower index.<part>.ts), which says what it offers",
      severity: 'error',
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/[^/]+/', pathNot: ['^src/$1/', ENTRY_POINT] },
    },
    {
      name: 'top-level-past-entry-point',
      comment: 'gateway, cli, config and inspect reach a stage only through its index.ts (or a narrower index.<part>.ts)',
      severity: 'error',
      from: { path: '^src/[^/]+\\.[jt]s$' },
      to: { path: '^src/[^/]+/', pathNot: ENTRY_POINT },
    },
    {
      name: 'unknown-stage',
      comment: 'every folder in src/ is a stage with a place in the data path: add it to STAGES in scripts/dependency-rules.cjs',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: `^src/(?!(${anyStage})/)[^/]+/` },
    },
    {
      name: 'unknown-stage-importer',
      comment: 'every folder in src/ is a stage with a place in the data path: add it to STAGES in scripts/dependency-rules.cjs',
      severity: 'error',
      from: { path: `^src/(?!(${anyStage})/)[^/]+/` },
      to: {},
    },
    {
      name: 'no-circular',
      comment: 'modules form no cycle, inside a stage or across stages',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    tsPreCompilationDeps: true,
  },
};
