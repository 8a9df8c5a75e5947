import type { FastifyInstance } from 'fastify';

import type { AppDeps } from './app-deps.js';

export function healthRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { engine, config, upstream } = deps;
  app.get('/health', async () => ({
    status: engine.state === 'running' ? 'healthy' : engine.state,
    active_batches: engine.activeCount,
    queued_batches: engine.queued.length,
    in_flight: engine.slots.inUse,
    max_workers: config.maxWorkersAuto ? 'auto' : config.maxWorkers,
    /** Requests the engine sends at once now: MAX_WORKERS, or with `auto` the sum of the upstream limits. */
    worker_limit: engine.slots.capacity,
    max_concurrent_batches: config.maxConcurrentBatches,
    upstreams: upstream.status(),
  }));
}
