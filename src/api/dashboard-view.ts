import { type BatchRecord, serializeBatch } from '../domain/index.js';
import type { Engine } from '../engine/engine.js';
import type { DashboardState } from './analytics-wiring.js';

/** A batch as the dashboard shows it: the OpenAI object (live counters) plus rates and totals. */
export function dashboardBatch(b: BatchRecord, engine: Engine, state: DashboardState): Record<string, unknown> {
  const live = engine.live(b.id);
  const rec = live ? { ...b, requestCounts: live.counts, usage: live.usage } : b;
  const base = serializeBatch(rec, live?.live ?? { queuePosition: engine.queuePosition(b.id), inFlight: 0 });
  const { total, completed, failed } = rec.requestCounts;
  const done = completed + failed;
  const rate = live ? state.rates.rate(b.id, done, total) : { requestsPerSecond: 0, etaSeconds: null };
  const end = rec.completedAt ?? rec.failedAt ?? rec.cancelledAt ?? rec.expiredAt ?? Math.floor(Date.now() / 1000);
  return {
    ...base,
    project: rec.project,
    error_rate: done > 0 ? Math.round((failed / done) * 10_000) / 10_000 : 0,
    progress: total > 0 ? Math.round((done / total) * 10_000) / 10_000 : 0,
    requests_per_second: Math.round(rate.requestsPerSecond * 100) / 100,
    eta_seconds: rate.etaSeconds,
    elapsed_seconds: Math.max(0, end - rec.createdAt),
    input_tokens: rec.usage.inputTokens,
    output_tokens: rec.usage.outputTokens,
    total_tokens: rec.usage.totalTokens,
  };
}

/**
 * In-flight requests against the worker limit (MAX_WORKERS) and the waiting queue in order. The
 * engine-wide load is shown to everyone (it explains a project's own pace); with a project, the
 * project's own share and only its queued batches (another project's ids stay hidden).
 */
export function engineView(engine: Engine, project?: string): Record<string, unknown> {
  const inFlight = engine.slots.inUse;
  const maxWorkers = engine.slots.capacity;
  const queue = engine.queued.map((q, i) => ({ id: q.id, project: q.project, position: i + 1 })).filter((q) => project === undefined || q.project === project);
  return {
    state: engine.state,
    in_flight: inFlight,
    max_workers: maxWorkers,
    utilisation: maxWorkers > 0 ? Math.round((inFlight / maxWorkers) * 10_000) / 10_000 : 0,
    active_batches: engine.activeCount,
    queue,
    ...(project === undefined ? {} : { project, project_in_flight: engine.slots.heldByGroup(project), project_active_batches: engine.activeIn(project) }),
  };
}
