import { batchNotFound, type BatchRecord, ConflictError, isTerminal } from '../domain/index.js';
import type { BlobStore } from '../store/blob-store.js';
import type { BatchQuota, BatchQuotaLimits, MetaStore } from '../store/meta-store.js';
import type { Upstream } from '../upstream/upstream.js';
import { BatchFinalizer } from './batch-finalizer.js';
import { requestCancel } from './batch-verbs.js';
import type { EngineContext, EngineOptions, Logger, ReplicaIdentity } from './engine-context.js';
import { EngineEvents } from './engine-events.js';
import { FairSlots } from './fair-slots.js';
import { Janitor } from './janitor.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { LocalTask } from './local-task.js';
import { WorkClaimer } from './work-claimer.js';

/**
 * One replica's engine. Every replica runs the same code, whether it is alone (SQLite, the
 * embedded default) or one of many (PostgreSQL): work is claimed from the store under leases
 * (WorkClaimer), kept by a heartbeat (LeaseKeeper), and done by local tasks — a BatchValidator,
 * ShardRunners, a BatchFinalizer — that share this replica's MAX_WORKERS slots fairly between
 * projects and batches (FairSlots).
 *
 * States: starting → running → draining → stopped.
 *   running   work is claimed as it appears
 *   draining  SIGTERM: nothing new is claimed; tasks stop taking lines, settle within the grace
 *             period and give their leases back (another replica, or the next start, resumes)
 *   stopped   every task returned
 */
export type EngineState = 'starting' | 'running' | 'draining' | 'stopped';

export interface EngineDeps {
  store: MetaStore;
  blobs: BlobStore;
  upstream: Upstream;
  log: Logger;
  maxWorkers: number;
  opts: EngineOptions;
  replica: ReplicaIdentity;
}

/** The engine's public view (the API reads this, never the engine's internals). */
export interface EngineSnapshot {
  replicaId: string;
  state: EngineState;
  /** Upstream requests in flight on this replica. */
  inFlight: number;
  /** Worker slots on this replica: MAX_WORKERS, or the upstreams' sum with auto. */
  workerLimit: number;
  /** Batches this replica validates or runs shards of. */
  activeBatches: number;
  /** With a project: that project's share of the above. */
  project?: { name: string; inFlight: number; activeBatches: number };
}

export class Engine {
  readonly events = new EngineEvents();
  readonly #slots: FairSlots;
  readonly #ctx: EngineContext;
  readonly #tasks = new Set<LocalTask>();
  readonly #claimer: WorkClaimer;
  readonly #keeper: LeaseKeeper;
  readonly #janitor: Janitor;
  readonly #startedAt = Date.now();
  #state: EngineState = 'starting';
  #unsubscribe: (() => void) | null = null;

  constructor(deps: EngineDeps) {
    this.#slots = new FairSlots(deps.maxWorkers);
    this.#ctx = { store: deps.store, blobs: deps.blobs, upstream: deps.upstream, slots: this.#slots, events: this.events, log: deps.log, opts: deps.opts, replica: deps.replica };
    this.#claimer = new WorkClaimer(this.#ctx, {
      // A replica whose heartbeats fail claims nothing: its leases could not be kept.
      running: () => this.#state === 'running' && this.#keeper.fresh(),
      tasks: () => this.#tasks,
      launch: (t) => this.#launch(t),
      hooks: { onTail: () => this.#claimer.wake(), onLastShard: () => this.#claimer.wake() },
    });
    this.#keeper = new LeaseKeeper(this.#ctx, {
      tasks: () => this.#tasks,
      state: () => this.#state,
      inFlight: () => this.#slots.inUse,
      workerLimit: () => this.#slots.capacity,
      startedAt: this.#startedAt,
    });
    this.#janitor = new Janitor(this.#ctx, Math.max(250, deps.opts.claimIntervalMs * 2));
  }

  get state(): EngineState {
    return this.#state;
  }

  snapshot(project?: string): EngineSnapshot {
    const batches = new Map<string, string>();
    for (const t of this.#tasks) if (t.kind !== 'finalize') batches.set(t.batchId, t.project);
    const snap: EngineSnapshot = {
      replicaId: this.#ctx.replica.id,
      state: this.#state,
      inFlight: this.#slots.inUse,
      workerLimit: this.#slots.capacity,
      activeBatches: batches.size,
    };
    if (project !== undefined) {
      let active = 0;
      for (const p of batches.values()) if (p === project) active++;
      snap.project = { name: project, inFlight: this.#slots.heldByGroup(project), activeBatches: active };
    }
    return snap;
  }

  /** MAX_WORKERS=auto: the slots follow the upstreams' limits. */
  setCapacity(n: number): void {
    this.#slots.setCapacity(n);
  }

  async start(): Promise<void> {
    const { store, log } = this.#ctx;
    // A store only this process uses: every lease in it belongs to a dead process (a crash, a kill).
    if (store.capabilities.singleReplica) {
      const freed = await store.releaseAllLeases();
      if (freed > 0) log.info({ leases: freed }, 'engine took over the leases of the previous run');
    }
    this.#state = 'running';
    // Changes made anywhere reach local tasks at once (on PostgreSQL through NOTIFY; the heartbeat
    // is the backstop): a cancel stops taking lines, a batch ended or deleted elsewhere stops.
    this.#unsubscribe = store.subscribe((e) => {
      if (e.type === 'work') return this.#claimer.wake();
      const stop = e.type === 'batch_deleted' ? 'delete' : e.status === 'cancelling' ? 'cancel' : isTerminal(e.status) ? 'delete' : null;
      if (stop === null) return;
      for (const t of this.#tasks) if (t.batchId === e.id && !(stop === 'delete' && t.kind === 'finalize' && e.type === 'batch')) t.stop(stop);
    });
    await this.#keeper.beat();
    this.#keeper.start();
    this.#janitor.start();
    await this.#janitor.sweep();
    this.#claimer.start();
  }

  /**
   * Records a new batch (status validating), within its project's quota; the replica with room
   * claims it (this one, or any other). Returns the limit that refused it, or null.
   */
  async create(batch: BatchRecord, quota?: BatchQuota): Promise<keyof BatchQuotaLimits | null> {
    const refused = await this.#ctx.store.insertBatch(batch, quota);
    if (refused !== null) return refused;
    this.#ctx.log.info({ batchId: batch.id, status: batch.status, requestCounts: batch.requestCounts }, `batch ${batch.status}`);
    this.events.safeEmit('batch:status', batch);
    this.#claimer.wake();
    return null;
  }

  /**
   * OpenAI cancel semantics: cancelling → cancelled; 409 on a finished batch. Whichever replica
   * runs the batch's shards sees the cancel at its next heartbeat; here it is seen at once.
   */
  async cancel(id: string): Promise<BatchRecord> {
    const { store, replica, opts } = this.#ctx;
    const batch = await store.getBatch(id);
    if (!batch) throw batchNotFound(id);
    if (batch.status === 'cancelling' || batch.status === 'cancelled') return batch;
    if (isTerminal(batch.status)) throw new ConflictError(`Cannot cancel a batch with status '${batch.status}'.`);
    const b = await requestCancel(this.#ctx, id);
    if (!b) return this.cancel(id); // it moved meanwhile: answer from its new status
    for (const t of this.#tasks) if (t.batchId === id) t.stop('cancel');
    if (batch.status === 'validating') {
      // Nobody validating it (it waited for a replica): nothing ran, so it ends here and now.
      const lease = await store.claimBatch(id, replica.id, opts.leaseTtlMs, ['cancelling']);
      if (lease) {
        const finalizer = new BatchFinalizer(this.#ctx, lease);
        this.#launch(finalizer);
        await finalizer.done;
        return (await store.getBatch(id)) ?? b;
      }
    }
    return b;
  }

  /** Stops the batch wherever it runs and removes it with its output and error files. */
  async deleteBatch(id: string): Promise<BatchRecord> {
    const { store, log } = this.#ctx;
    const batch = await store.getBatch(id);
    if (!batch) throw batchNotFound(id);
    // Gone from the store first, so that no replica (this one included) claims any more of it.
    const removed = (await store.deleteBatch(id)) ?? batch;
    const local = [...this.#tasks].filter((t) => t.batchId === id);
    for (const t of local) t.stop('delete');
    await Promise.all(local.map((t) => t.done));
    // Other replicas see it gone at their next heartbeat; its blobs go once they let go of it.
    await this.#janitor.purge(id);
    log.info({ batchId: id, status: removed.status }, 'batch deleted');
    this.events.safeEmit('batch:deleted', id, batch.project);
    return removed;
  }

  /** Graceful stop: nothing new is claimed; tasks settle within the grace period and give their leases back. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'draining';
    await this.#claimer.stop();
    await this.#janitor.stop();
    for (const t of this.#tasks) t.stop('shutdown');
    await Promise.all([...this.#tasks].map((t) => t.done));
    this.#unsubscribe?.();
    this.#state = 'stopped';
    await this.#keeper.stop();
  }

  /** Resolves once no claim round is running (tests). */
  async settled(): Promise<void> {
    await this.#claimer.idle();
  }

  #launch(task: LocalTask): void {
    this.#tasks.add(task);
    void task.done.finally(() => {
      this.#tasks.delete(task);
      if (this.#state === 'running') this.#claimer.wake();
    });
  }
}
