import type { FastifyInstance } from 'fastify';

import { AnalyticsQueries, AnalyticsRecorder, ThroughputTracker } from '../analytics/index.js';
import { finishedAt, isTerminal } from '../domain/index.js';
import type { AppDeps } from './app-deps.js';
import { ClusterProgress } from './cluster-progress.js';

/** The dashboard's live state, shared by the analytics routes and the SSE stream. */
export interface DashboardState {
  recorder: AnalyticsRecorder;
  queries: AnalyticsQueries;
  rates: ThroughputTracker;
  progress: ClusterProgress;
}

/**
 * Feeds the per-minute counters from this replica's engine events (each replica adds its own
 * counts to the shared minute rows, so the store holds the cluster's sums; uploads are counted by
 * the files route), samples every running batch's throughput from the store, and flushes the
 * counters when the app closes (before the store does).
 */
export function wireAnalytics(app: FastifyInstance, deps: AppDeps): DashboardState {
  const { engine, store } = deps;
  const recorder = new AnalyticsRecorder(store);
  const queries = new AnalyticsQueries(store, recorder);
  const rates = new ThroughputTracker();
  const progress = new ClusterProgress(store, rates);
  const ev = engine.events;

  const onDone: Parameters<typeof ev.on<'request:done'>>[1] = (e) => recorder.requestDone(e);
  const onRetry: Parameters<typeof ev.on<'request:retry'>>[1] = (e) => recorder.retry(e.project);
  const onStatus: Parameters<typeof ev.on<'batch:status'>>[1] = (b) => {
    if (b.status === 'validating' && b.inProgressAt === null) recorder.batchCreated(b.project, b.createdAt);
    if (isTerminal(b.status)) {
      recorder.batchFinished(b.project, (finishedAt(b) ?? b.createdAt) - (b.inProgressAt ?? b.createdAt));
      rates.forget(b.id);
      void recorder.flush();
    }
  };
  const onDeleted = (id: string): void => rates.forget(id);
  // What this replica counted of a shard goes to the shared minutes before the batch can end, so
  // a finished batch's figures are complete on every replica's dashboard at once.
  const onShard = (): void => void recorder.flush();
  ev.on('request:done', onDone);
  ev.on('request:retry', onRetry);
  ev.on('batch:status', onStatus);
  ev.on('batch:deleted', onDeleted);
  ev.on('shard:released', onShard);
  recorder.start();
  progress.start();

  app.addHook('onClose', async () => {
    ev.off('request:done', onDone);
    ev.off('request:retry', onRetry);
    ev.off('batch:status', onStatus);
    ev.off('batch:deleted', onDeleted);
    ev.off('shard:released', onShard);
    progress.stop();
    await recorder.stop();
  });
  return { recorder, queries, rates, progress };
}
