import { parseArgs } from 'node:util';

export const SCENARIO_NAMES = [
  'throughput',
  'utilisation',
  'million',
  'upload',
  'eight-gpu',
  'auto-workers',
  'cluster-scale',
  'cluster-stores',
  'cluster-million',
  'cluster-failover',
  'prefix-order',
  'prefix-affinity',
  'auto-vllm',
  'interactive',
  'deadline',
] as const;

/** Names that stand for several scenarios (`--only cluster`). */
const GROUPS: Record<string, readonly ScenarioName[]> = {
  cluster: ['cluster-scale', 'cluster-stores', 'cluster-million', 'cluster-failover'],
  gpu: ['prefix-order', 'prefix-affinity', 'auto-vllm', 'interactive', 'deadline'],
};
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export interface BenchOptions {
  readonly only: readonly ScenarioName[];
  /** Sizes divided by 10, for a smoke run. */
  readonly quick: boolean;
}

export const USAGE = `Usage: node dist/bench/run.js [--only ${SCENARIO_NAMES.join(',')}] [--quick]

  --only <list>  comma-separated scenarios to run (default: all, in this order); 'cluster' = every cluster-* one,
                 'gpu' = the GPU-efficiency ones (prefix-order … deadline)
  --quick        divide every size by 10 (smoke run; figures are not comparable)
  --help         show this text`;

export class UsageError extends Error {
  override name = 'UsageError';
}

const isScenario = (s: string): s is ScenarioName => (SCENARIO_NAMES as readonly string[]).includes(s);

/** Returns null when --help was asked for. */
export function parseBenchArgs(argv: readonly string[]): BenchOptions | null {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { only: { type: 'string' }, quick: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return null;
  const only: ScenarioName[] = [];
  if (values.only !== undefined) {
    for (const raw of values.only.split(',')) {
      const name = raw.trim();
      if (name === '') continue;
      const names = GROUPS[name] ?? (isScenario(name) ? [name] : null);
      if (names === null) throw new UsageError(`Unknown scenario '${name}'; expected one of ${[...SCENARIO_NAMES, ...Object.keys(GROUPS)].join(', ')}.`);
      for (const n of names) if (!only.includes(n)) only.push(n);
    }
    if (only.length === 0) throw new UsageError('--only needs at least one scenario name.');
  }
  // Keep the canonical order whatever order --only listed them in.
  const selected = only.length === 0 ? [...SCENARIO_NAMES] : SCENARIO_NAMES.filter((n) => only.includes(n));
  return { only: selected, quick: values.quick };
}
