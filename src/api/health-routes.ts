import type { FastifyInstance } from 'fastify';

import type { AppDeps } from './app-deps.js';

export function healthRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { engine, config } = deps;
  app.get('/health', async () => ({
    status: engine.state === 'running' ? 'healthy' : engine.state,
    active_batches: engine.activeCount,
    queued_batches: engine.queuedIds.length,
    in_flight: engine.slots.inUse,
    max_workers: config.maxWorkers,
    max_concurrent_batches: config.maxConcurrentBatches,
  }));
}
