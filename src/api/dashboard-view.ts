import { type BatchRecord, finishedAt, nowSeconds } from '../domain/index.js';
import type { DashboardState } from './analytics-wiring.js';
import { presentBatch } from './cluster-view.js';

/** A batch as the dashboard shows it: the OpenAI object (live counters) plus rates and totals. */
export function dashboardBatch(b: BatchRecord, state: DashboardState, positions: ReadonlyMap<string, number>): Record<string, unknown> {
  const base = presentBatch(b, positions, state.rates);
  const { total, completed, failed } = b.requestCounts;
  const done = completed + failed;
  const running = finishedAt(b) === null;
  const rate = running ? state.rates.rate(b.id, done, total) : { requestsPerSecond: 0, etaSeconds: null };
  const end = finishedAt(b) ?? nowSeconds();
  return {
    ...base,
    project: b.project,
    error_rate: done > 0 ? Math.round((failed / done) * 10_000) / 10_000 : 0,
    progress: total > 0 ? Math.round((done / total) * 10_000) / 10_000 : 0,
    requests_per_second: Math.round(rate.requestsPerSecond * 100) / 100,
    eta_seconds: rate.etaSeconds,
    elapsed_seconds: Math.max(0, end - b.createdAt),
    input_tokens: b.usage.inputTokens,
    output_tokens: b.usage.outputTokens,
    total_tokens: b.usage.totalTokens,
  };
}
