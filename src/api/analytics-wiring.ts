import type { FastifyInstance } from 'fastify';

import { AnalyticsQueries, AnalyticsRecorder, ThroughputTracker } from '../analytics/index.js';
import { isTerminal } from '../domain/index.js';
import type { AppDeps } from './app-deps.js';

/** The dashboard's live state, shared by the analytics routes and the SSE stream. */
export interface DashboardState {
  recorder: AnalyticsRecorder;
  queries: AnalyticsQueries;
  rates: ThroughputTracker;
}

/**
 * Feeds the per-minute counters and per-batch throughput from the engine's events (uploads are
 * counted by the files route), and flushes the counters when the app closes (before the store does).
 */
export function wireAnalytics(app: FastifyInstance, deps: AppDeps): DashboardState {
  const { engine, store } = deps;
  const recorder = new AnalyticsRecorder(store);
  const queries = new AnalyticsQueries(store, recorder);
  const rates = new ThroughputTracker();
  const ev = engine.events;

  const onDone: Parameters<typeof ev.on<'request:done'>>[1] = (e) => recorder.requestDone(e);
  const onRetry: Parameters<typeof ev.on<'request:retry'>>[1] = (e) => recorder.retry(e.project);
  const onProgress: Parameters<typeof ev.on<'batch:progress'>>[1] = (p) => rates.sample(p.batchId, p.counts.completed + p.counts.failed);
  const onStatus: Parameters<typeof ev.on<'batch:status'>>[1] = (b) => {
    if (b.status === 'validating' && b.inProgressAt === null) recorder.batchCreated(b.project, b.createdAt);
    if (isTerminal(b.status)) {
      const end = b.completedAt ?? b.failedAt ?? b.cancelledAt ?? b.expiredAt ?? b.createdAt;
      recorder.batchFinished(b.project, end - (b.inProgressAt ?? b.createdAt));
      rates.forget(b.id);
    }
  };
  const onDeleted = (id: string): void => rates.forget(id);
  ev.on('request:done', onDone);
  ev.on('request:retry', onRetry);
  ev.on('batch:progress', onProgress);
  ev.on('batch:status', onStatus);
  ev.on('batch:deleted', onDeleted);
  recorder.start();

  app.addHook('onClose', async () => {
    ev.off('request:done', onDone);
    ev.off('request:retry', onRetry);
    ev.off('batch:progress', onProgress);
    ev.off('batch:status', onStatus);
    ev.off('batch:deleted', onDeleted);
    await recorder.stop();
  });
  return { recorder, queries, rates };
}
