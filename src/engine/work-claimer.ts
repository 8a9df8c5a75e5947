import { nowSeconds } from '../domain/index.js';
import type { ClaimableBatch } from '../store/meta-store.js';
import { BatchFinalizer } from './batch-finalizer.js';
import { BatchValidator } from './batch-validator.js';
import type { EngineContext } from './engine-context.js';
import type { LocalTask } from './local-task.js';
import { ShardRunner, type ShardRunnerHooks } from './shard-runner.js';

/** At most this many batches are looked at per round. */
const CLAIM_PAGE = 200;
/** Shards of a cancelled or expired batch taken per round: settling them sends nothing upstream. */
const SETTLE_PER_ROUND = 8;

export interface ClaimerHost {
  running(): boolean;
  tasks(): Iterable<LocalTask>;
  launch(task: LocalTask): void;
  hooks: ShardRunnerHooks;
}

/**
 * Decides what this replica takes on, one round at a time (on a timer, and whenever something
 * may have become claimable: a new batch, a shard given back, a shard's tail, a task ended).
 * "Claim only what can start now; do not hoard":
 *   1. finalize  any batch whose shards are all done (cheap; no worker slot needed)
 *   2. settle    shards of batches that are cancelling or past their deadline (no upstream call)
 *   3. continue  the next shard of a batch this replica runs, once its running shards are in
 *                their tail (every line sent), so slots never idle between shards
 *   4. admit     new batches up to MAX_CONCURRENT_BATCHES on this replica: validation of a
 *                waiting batch, or a shard of one that other replicas run. Each time the project
 *                with the fewest leases on the whole cluster goes first (fair share across
 *                replicas), ties to the project admitted here least recently, then the batch
 *                due first (earliest expires_at), then the one with the fewest leased shards,
 *                then the oldest.
 */
export class WorkClaimer {
  readonly #ctx: EngineContext;
  readonly #host: ClaimerHost;
  readonly #admittedAt = new Map<string, number>();
  #admissions = 0;
  #round: Promise<void> | null = null;
  #again = false;
  #timer: NodeJS.Timeout | null = null;

  constructor(ctx: EngineContext, host: ClaimerHost) {
    this.#ctx = ctx;
    this.#host = host;
  }

  start(): void {
    this.#timer ??= setInterval(() => this.wake(), this.#ctx.opts.claimIntervalMs);
    this.#timer.unref();
    this.wake();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#again = false;
    await this.#round;
  }

  /** Runs a round soon; wakes during a round run one more right after it. */
  wake(): void {
    if (this.#round) {
      this.#again = true;
      return;
    }
    this.#round = this.#claim()
      .catch((err: unknown) => this.#ctx.log.warn({ err }, 'claiming work failed'))
      .finally(() => {
        this.#round = null;
        if (this.#again && this.#host.running()) {
          this.#again = false;
          this.wake();
        }
      });
  }

  /** Resolves once no round is running (tests). */
  async idle(): Promise<void> {
    while (this.#round) await this.#round;
  }

  async #claim(): Promise<void> {
    if (!this.#host.running()) return;
    const { store, replica, opts } = this.#ctx;
    const work = await store.listClaimable(CLAIM_PAGE);
    const leases = new Map(Object.entries(work.leasesByProject));
    const local = this.#localView();
    const now = nowSeconds();

    for (const b of work.batches) {
      if (!this.#host.running()) return;
      if (b.need === 'finalize' && !local.finalizing.has(b.id)) {
        const lease = await store.claimBatch(b.id, replica.id, opts.leaseTtlMs, ['in_progress', 'cancelling', 'finalizing']);
        if (lease) this.#host.launch(new BatchFinalizer(this.#ctx, lease));
      } else if (b.need === 'run' && (b.status === 'cancelling' || b.expiresAt <= now)) {
        for (let i = 0; i < SETTLE_PER_ROUND && (await this.#claimShard(b)); i++);
      } else if (b.need === 'run' && local.running.has(b.id) && local.inTail(b.id)) {
        await this.#claimShard(b);
      }
    }

    let active = local.running.size;
    const candidates = work.batches.filter((b) => (b.need === 'validate' || b.need === 'run') && !local.running.has(b.id));
    while (active < opts.maxConcurrentBatches && candidates.length > 0 && this.#host.running()) {
      const rank = (b: ClaimableBatch): [number, number, number, number] => [leases.get(b.project) ?? 0, this.#admittedAt.get(b.project) ?? -1, b.expiresAt, b.leasedShards];
      let pick = 0;
      for (let i = 1; i < candidates.length; i++) if (before(rank(candidates[i]!), rank(candidates[pick]!))) pick = i;
      const [b] = candidates.splice(pick, 1);
      const claimed = b!.need === 'validate' ? await this.#claimValidation(b!) : await this.#claimShard(b!);
      // Taken by us or, when the claim lost a race, by another replica reading the same list:
      // either way the project holds one more lease than this list says.
      leases.set(b!.project, (leases.get(b!.project) ?? 0) + 1);
      if (!claimed) continue;
      active++;
      this.#admittedAt.set(b!.project, ++this.#admissions);
    }
  }

  async #claimValidation(b: ClaimableBatch): Promise<boolean> {
    const { store, replica, opts } = this.#ctx;
    const lease = await store.claimBatch(b.id, replica.id, opts.leaseTtlMs, ['validating']);
    if (lease) this.#host.launch(new BatchValidator(this.#ctx, lease));
    return lease !== null;
  }

  async #claimShard(b: ClaimableBatch): Promise<boolean> {
    const { store, replica, opts } = this.#ctx;
    const lease = await store.claimShard(b.id, replica.id, opts.leaseTtlMs);
    if (lease) this.#host.launch(new ShardRunner(this.#ctx, lease, this.#host.hooks));
    return lease !== null;
  }

  /** What this replica works on now, per batch. */
  #localView(): { running: Set<string>; finalizing: Set<string>; inTail(id: string): boolean } {
    const running = new Set<string>();
    const finalizing = new Set<string>();
    const busy = new Set<string>();
    for (const t of this.#host.tasks()) {
      if (t.kind === 'finalize') {
        finalizing.add(t.batchId);
        continue;
      }
      running.add(t.batchId);
      if (!(t instanceof ShardRunner) || !t.tail) busy.add(t.batchId);
    }
    return { running, finalizing, inTail: (id) => !busy.has(id) };
  }
}

/** Lexicographic "a ranks before b". */
function before(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}
