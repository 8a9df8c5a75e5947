import type { FastifyInstance } from 'fastify';

import type { AppDeps } from './app-deps.js';
import { clusterTotals } from './cluster-view.js';

/** Per replica (a load balancer's probe asks the one it reaches), with the cluster's figures added. */
export function healthRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { engine, config, upstream, blobs, store } = deps;
  app.get('/health', async () => {
    const me = engine.snapshot();
    const cluster = await clusterTotals(deps).catch(() => null);
    return {
      status: me.state === 'running' ? 'healthy' : me.state,
      replica: me.replicaId,
      active_batches: me.activeBatches,
      queued_batches: cluster?.queued.length ?? null,
      in_flight: me.inFlight,
      max_workers: config.maxWorkersAuto ? 'auto' : config.maxWorkers,
      /** Requests this replica sends at once now: MAX_WORKERS, or with `auto` the sum of the upstream limits. */
      worker_limit: me.workerLimit,
      max_concurrent_batches: config.maxConcurrentBatches,
      store: { database: config.database.kind, blobs: blobs.kind, single_replica: store.capabilities.singleReplica },
      cluster:
        cluster === null
          ? null
          : { replicas: cluster.replicas, in_flight: cluster.inFlight, worker_limit: cluster.workerLimit, active_batches: cluster.activeBatches, queued_batches: cluster.queued.length },
      upstreams: upstream.status(),
    };
  });
}
