import type { ThroughputTracker } from '../analytics/index.js';
import { type BatchRecord, RUNNING_STATUSES, serializeBatch } from '../domain/index.js';
import type { AppDeps } from './app-deps.js';
import { deadlineView } from './batch-deadline.js';

/** A replica that heartbeat within this many lease TTLs is shown as alive. */
const ALIVE_TTLS = 1;
/** Replicas shown in the engine panel include those silent for up to this long (marked dead). */
const SHOWN_MS = 10 * 60_000;
const QUEUE_SHOWN = 100;

/** Waiting batches (no replica has taken them yet), 1-based positions in the whole queue, by id. */
export async function queuePositions(deps: Pick<AppDeps, 'store'>): Promise<Map<string, number>> {
  const queue = await deps.store.listQueuedBatches(undefined, 1000);
  return new Map(queue.map((q, i) => [q.id, i + 1]));
}

/**
 * A batch as the API shows it: OpenAI's object (live counters from the store) plus queue_position,
 * in_flight and, with the measured rates, expected_completion_at and deadline_at_risk.
 */
export function presentBatch(b: BatchRecord, positions: ReadonlyMap<string, number>, rates?: ThroughputTracker): Record<string, unknown> {
  return { ...serializeBatch(b, { queuePosition: positions.get(b.id) ?? null, inFlight: b.inFlight }), ...(rates ? deadlineView(b, rates) : {}) };
}

export interface ClusterTotals {
  /** Replicas alive now (this one included). */
  replicas: number;
  inFlight: number;
  workerLimit: number;
  /** Batches being validated or run on some replica. */
  activeBatches: number;
  queued: Array<{ id: string; project: string }>;
}

/**
 * The cluster seen from this replica: every live replica's in-flight requests and worker limit
 * (this one's live, the others' as of their last heartbeat), the batches being worked, the queue.
 */
export async function clusterTotals(deps: Pick<AppDeps, 'store' | 'engine' | 'config'>, project?: string): Promise<ClusterTotals> {
  const { store, engine, config } = deps;
  const me = engine.snapshot();
  const [replicas, queued, counts] = await Promise.all([store.listReplicas(config.leaseTtlMs * ALIVE_TTLS), store.listQueuedBatches(project, 1000), store.countBatchesByStatus(project)]);
  let inFlight = me.inFlight;
  let workerLimit = me.workerLimit;
  let alive = 1;
  for (const r of replicas) {
    if (r.id === me.replicaId) continue;
    inFlight += r.inFlight;
    workerLimit += r.workerLimit;
    alive++;
  }
  const running = RUNNING_STATUSES.reduce((n, s) => n + (counts[s] ?? 0), 0);
  const validating = Math.max(0, (counts.validating ?? 0) - queued.length);
  return { replicas: alive, inFlight, workerLimit, activeBatches: running + validating, queued };
}

/**
 * The engine panel: in-flight requests against the worker limit, summed over the cluster, the
 * waiting queue in order, and each replica with its heartbeat, leases and in-flight requests.
 * The load is shown to everyone (it explains a project's own pace); with a project, its own share
 * and only its queued batches (another project's ids stay hidden).
 */
export async function engineView(deps: Pick<AppDeps, 'store' | 'engine' | 'config'>, project?: string): Promise<Record<string, unknown>> {
  const { store, engine, config } = deps;
  const me = engine.snapshot();
  const [totals, mine, replicas, byProject] = await Promise.all([
    clusterTotals(deps),
    project === undefined ? Promise.resolve(null) : clusterTotals(deps, project),
    store.listReplicas(SHOWN_MS),
    project === undefined ? Promise.resolve(null) : store.inFlightByProject(),
  ]);
  const now = Date.now();
  const newest = replicas.reduce((m, r) => Math.max(m, r.heartbeatAt), 0);
  return {
    state: me.state,
    replica: me.replicaId,
    in_flight: totals.inFlight,
    max_workers: totals.workerLimit,
    utilisation: totals.workerLimit > 0 ? Math.round((totals.inFlight / totals.workerLimit) * 10_000) / 10_000 : 0,
    active_batches: totals.activeBatches,
    // Positions in the whole queue (the order replicas take batches in), shown for the caller's project only.
    queue: totals.queued
      .map((q, i) => ({ id: q.id, project: q.project, position: i + 1 }))
      .filter((q) => project === undefined || q.project === project)
      .slice(0, QUEUE_SHOWN),
    replicas: replicas.map((r) => {
      const self = r.id === me.replicaId;
      // Heartbeat ages are measured on the store's clock (the newest heartbeat is "now" enough).
      const age = self ? 0 : Math.max(0, newest - r.heartbeatAt);
      return {
        id: r.id,
        host: r.host,
        state: self ? me.state : r.state,
        alive: self || age <= config.leaseTtlMs * ALIVE_TTLS,
        heartbeat_age_ms: age,
        in_flight: self ? me.inFlight : r.inFlight,
        worker_limit: self ? me.workerLimit : r.workerLimit,
        leases: r.leases,
        version: r.version,
        started_at: Math.floor(r.startedAt / 1000),
        self,
      };
    }),
    ...(project === undefined
      ? {}
      : { project, project_in_flight: byProject?.[project] ?? 0, project_active_batches: mine?.activeBatches ?? 0 }),
    generated_at: Math.floor(now / 1000),
  };
}
