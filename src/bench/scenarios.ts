import { join } from 'node:path';

import { runBatch } from './batch-run.js';
import { uploadFile } from './besh-client.js';
import { clusterFailover, clusterMillion, clusterScale, clusterStores } from './cluster-scenarios.js';
import { fixed, int, MB, megabytes, percent, seconds } from './format.js';
import { autoVllm, deadline, interactive } from './gpu-load-scenarios.js';
import { prefixAffinity, prefixOrder } from './gpu-prefix-scenarios.js';
import { linesFor, writeRequestFile } from './input-file.js';
import { mockStats } from './mock-client.js';
import type { ScenarioName } from './options.js';
import { RssSampler } from './rss-sampler.js';
import { withStack } from './stack.js';
import { autoWorkers, eightGpu } from './upstream-scenarios.js';

export interface ScenarioContext {
  /** A fresh temp dir for this scenario's input file and BESH data. */
  dir: string;
  /** 1, or 10 with --quick. */
  divisor: number;
  log: (msg: string) => void;
}

export interface Scenario {
  title(divisor: number): string;
  target: string;
  run(ctx: ScenarioContext): Promise<{ figure: string; pass: boolean }>;
}

const WORKERS = 128;
const size = (full: number, divisor: number): number => Math.round(full / divisor);

/** Writes the input file, logging how long that took (it is not part of any figure). */
async function prepareInput(ctx: ScenarioContext, count: number, padTo = 0): Promise<{ path: string; bytes: number }> {
  const path = join(ctx.dir, 'input.jsonl');
  const t0 = performance.now();
  const bytes = await writeRequestFile(path, count, padTo);
  ctx.log(`  input: ${int(count)} lines, ${megabytes(bytes)} written in ${seconds(performance.now() - t0)}`);
  return { path, bytes };
}

const throughput: Scenario = {
  title: (d) => `throughput: ${int(size(50_000, d))} requests, latency 0 ms, MAX_WORKERS ${WORKERS}`,
  target: '≥ 5,000 req/s',
  async run(ctx) {
    const n = size(50_000, ctx.divisor);
    const input = await prepareInput(ctx, n);
    const r = await withStack(ctx.dir, { mockLatencyMs: 0, maxWorkers: WORKERS }, (s) => runBatch(s, input.path, n, ctx.log));
    const rps = n / (r.elapsedMs / 1000);
    return { figure: `${int(rps)} req/s (${seconds(r.elapsedMs)}), peak RSS ${megabytes(r.rss.peakBytes)}`, pass: rps >= 5000 };
  },
};

const UTILISATION_LATENCY_MS = 100;

const utilisation: Scenario = {
  title: (d) => `utilisation: ${int(size(25_600, d))} requests, latency ${UTILISATION_LATENCY_MS} ms, MAX_WORKERS ${WORKERS}`,
  target: '≥ 97 % of ideal',
  async run(ctx) {
    const n = size(25_600, ctx.divisor);
    const idealMs = (n * UTILISATION_LATENCY_MS) / WORKERS;
    const input = await prepareInput(ctx, n);
    const { r, maxInFlight } = await withStack(ctx.dir, { mockLatencyMs: UTILISATION_LATENCY_MS, maxWorkers: WORKERS }, async (s) => {
      const r = await runBatch(s, input.path, n, ctx.log);
      if (!s.mock) throw new Error('utilisation needs the mock');
      const stats = await mockStats(s.mock.url);
      return { r, maxInFlight: stats.max_in_flight };
    });
    const u = idealMs / r.elapsedMs;
    return {
      figure: `${percent(u)} (${seconds(r.elapsedMs)} vs ideal ${seconds(idealMs)}), mock max_in_flight ${int(maxInFlight)}`,
      pass: u >= 0.97,
    };
  },
};

const MILLION_RSS_LIMIT = 300 * MB;

const million: Scenario = {
  title: (d) => `million: ${int(size(1_000_000, d))}-line batch, latency 0 ms, MAX_WORKERS ${WORKERS}`,
  target: 'peak RSS < 300 MB',
  async run(ctx) {
    const n = size(1_000_000, ctx.divisor);
    const input = await prepareInput(ctx, n);
    const r = await withStack(ctx.dir, { mockLatencyMs: 0, maxWorkers: WORKERS }, (s) => runBatch(s, input.path, n, ctx.log));
    const rps = n / (r.elapsedMs / 1000);
    return {
      figure: `peak RSS ${megabytes(r.rss.peakBytes)}, ${seconds(r.elapsedMs)} (${int(rps)} req/s)`,
      pass: r.rss.peakBytes < MILLION_RSS_LIMIT,
    };
  },
};

const UPLOAD_LINE_BYTES = 1024;

const upload: Scenario = {
  title: (d) => `upload: ${megabytes(size(200 * MB, d))} JSONL file (1 KB lines)`,
  target: '≥ 100 MB/s',
  async run(ctx) {
    const target = size(200 * MB, ctx.divisor);
    const input = await prepareInput(ctx, linesFor(target, UPLOAD_LINE_BYTES), UPLOAD_LINE_BYTES);
    return withStack(ctx.dir, { mockLatencyMs: null, maxWorkers: WORKERS }, async (s) => {
      const sampler = new RssSampler(s.besh.pid).start();
      try {
        const t0 = performance.now();
        const file = await uploadFile(s.besh.url, input.path);
        const ms = performance.now() - t0;
        const rss = await sampler.stop();
        if (file.bytes !== input.bytes) throw new Error(`BESH stored ${file.bytes} bytes of the ${input.bytes}-byte file`);
        const mbps = input.bytes / MB / (ms / 1000);
        return { figure: `${fixed(mbps, 0)} MB/s (${seconds(ms)}), peak RSS ${megabytes(rss.peakBytes)}`, pass: mbps >= 100 };
      } finally {
        await sampler.stop();
      }
    });
  },
};

export const SCENARIOS: Record<ScenarioName, Scenario> = {
  throughput,
  utilisation,
  million,
  upload,
  'eight-gpu': eightGpu,
  'auto-workers': autoWorkers,
  'cluster-scale': clusterScale,
  'cluster-stores': clusterStores,
  'cluster-million': clusterMillion,
  'cluster-failover': clusterFailover,
  'prefix-order': prefixOrder,
  'prefix-affinity': prefixAffinity,
  'auto-vllm': autoVllm,
  interactive,
  deadline,
};
