import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { runBatch } from './batch-run.js';
import type { ScenarioContext } from './scenarios.js';
import { type Service, startBesh } from './services.js';
import { scrapeAll, servedBetween,type ServedWork } from './vllm-mock.js';

const MAX_FILE_BYTES = 1024 ** 3;
let runs = 0;

export interface BeshRunSettings {
  /** OPENAI_API_BASE: one or several comma-separated base URLs. */
  upstreamBase: string;
  maxWorkers: number | 'auto';
  /** BESH_* variables of this run (BESH_PREFIX_ORDER, BESH_UPSTREAM_HEADROOM, …). */
  env?: Record<string, string>;
}

/** Starts BESH (a fresh data directory) with `s`, runs `fn`, stops it; errors carry the end of its output. */
export async function withBesh<T>(ctx: ScenarioContext, s: BeshRunSettings, fn: (besh: Service) => Promise<T>): Promise<T> {
  const dataDir = join(ctx.dir, `besh-${++runs}`);
  await mkdir(dataDir, { recursive: true });
  const besh = await startBesh({ dataDir, upstreamUrl: '', upstreamBase: s.upstreamBase, maxWorkers: s.maxWorkers, maxFileBytes: MAX_FILE_BYTES, ...(s.env ? { env: s.env } : {}) });
  try {
    return await fn(besh);
  } catch (err) {
    if (err instanceof Error) err.message += `\n--- besh output (end) ---\n${besh.outputTail()}`;
    throw err;
  } finally {
    await besh.stop();
  }
}

export interface MeasuredRun {
  /** From POST /v1/batches to the poll that saw `completed` (upload excluded, validation included). */
  elapsedMs: number;
  /** What the mocks answered meanwhile. */
  served: ServedWork;
  /** Useful tokens (prompt + completion answered) per second of `elapsedMs`. */
  tokensPerSecond: number;
}

/** One batch of `count` lines from `input` through a fresh BESH, with the mocks' counters around it. */
export async function measureBesh(ctx: ScenarioContext, s: BeshRunSettings, input: string, count: number, mockUrls: readonly string[]): Promise<MeasuredRun> {
  return withBesh(ctx, s, async (besh) => {
    const before = await scrapeAll(mockUrls);
    const r = await runBatch({ besh, mock: null }, input, count, () => undefined);
    const served = servedBetween(before, await scrapeAll(mockUrls));
    return { elapsedMs: r.elapsedMs, served, tokensPerSecond: served.tokens / (r.elapsedMs / 1000) };
  });
}
