import type { FastifyInstance } from 'fastify';

import type { AppDeps } from './app-deps.js';
import { clusterTotals } from './cluster-view.js';
import { limitsOf, limitsView, listScope } from './tenancy.js';

/** Purposes always reported, even with no file (so dashboards see a zero, not a gap). */
const REPORTED_PURPOSES = ['batch', 'batch_output'] as const;

export interface StorageStatus {
  bytes_by_purpose: Record<string, number>;
  total_bytes: number;
  /** Room left where blobs go; null when the blob store has no such bound (S3). */
  free_bytes: number | null;
  free_floor_bytes: number;
}

/** Bytes stored by purpose (from the store) and free space where blobs go. */
export async function storageStatus(deps: Pick<AppDeps, 'store' | 'config' | 'blobs'>, project?: string): Promise<StorageStatus> {
  const stored = await deps.store.bytesByPurpose(project);
  const byPurpose: Record<string, number> = Object.fromEntries(REPORTED_PURPOSES.map((p) => [p, 0]));
  for (const [purpose, bytes] of Object.entries(stored)) byPurpose[purpose] = bytes;
  return {
    bytes_by_purpose: byPurpose,
    total_bytes: Object.values(byPurpose).reduce((a, b) => a + b, 0),
    free_bytes: await deps.blobs.freeBytes(),
    free_floor_bytes: deps.config.minFreeBytes,
  };
}

/**
 * `GET /v1/batches/status` (the original product's route): the cluster's load and the storage
 * figures. Registered before `/v1/batches/:id` so `status` is never taken for a batch id.
 */
export function statusRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { config, store } = deps;
  app.get<{ Querystring: { project?: string } }>('/v1/batches/status', async (req) => {
    // A key sees its project's batches and bytes; an admin all (or one project with ?project=).
    const project = listScope(req, req.query.project);
    const totals = await clusterTotals(deps, project);
    const inFlight = project === undefined ? totals.inFlight : ((await store.inFlightByProject())[project] ?? 0);
    return {
      active_batches: totals.activeBatches,
      queued_batches: totals.queued.length,
      max_workers: config.maxWorkers,
      max_concurrent_batches: config.maxConcurrentBatches,
      in_flight: inFlight,
      replicas: totals.replicas,
      storage: await storageStatus(deps, project),
      ...(project === undefined ? {} : { project, limits: await limitsOf(store, config, project).then(limitsView) }),
    };
  });
}
