import type { FastifyInstance } from 'fastify';

import type { AppDeps } from './app-deps.js';
import { freeBytes } from './disk-space.js';

/** Purposes always reported, even with no file (so dashboards see a zero, not a gap). */
const REPORTED_PURPOSES = ['batch', 'batch_output'] as const;

export interface StorageStatus {
  bytes_by_purpose: Record<string, number>;
  total_bytes: number;
  free_bytes: number;
  free_floor_bytes: number;
}

/** Bytes stored by purpose (from the store) and free space of the data directory. */
export async function storageStatus(deps: Pick<AppDeps, 'store' | 'config'>): Promise<StorageStatus> {
  const stored = await deps.store.bytesByPurpose();
  const byPurpose: Record<string, number> = Object.fromEntries(REPORTED_PURPOSES.map((p) => [p, 0]));
  for (const [purpose, bytes] of Object.entries(stored)) byPurpose[purpose] = bytes;
  return {
    bytes_by_purpose: byPurpose,
    total_bytes: Object.values(byPurpose).reduce((a, b) => a + b, 0),
    free_bytes: await freeBytes(deps.config.dataDir),
    free_floor_bytes: deps.config.minFreeBytes,
  };
}

/**
 * `GET /v1/batches/status` (the original product's route): the engine's load and the storage
 * figures. Registered before `/v1/batches/:id` so `status` is never taken for a batch id.
 */
export function statusRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { engine, config } = deps;
  app.get('/v1/batches/status', async () => ({
    active_batches: engine.activeCount,
    queued_batches: engine.queuedIds.length,
    max_workers: config.maxWorkers,
    max_concurrent_batches: config.maxConcurrentBatches,
    in_flight: engine.slots.inUse,
    storage: await storageStatus(deps),
  }));
}
