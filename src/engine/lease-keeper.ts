import { type BatchStatus, isTerminal } from '../domain/index.js';
import type { Heartbeat, LeaseFence, ShardFence, ShardProgress } from '../store/meta-store.js';
import type { EngineContext } from './engine-context.js';
import type { LocalTask } from './local-task.js';

export interface KeeperSource {
  tasks(): Iterable<LocalTask>;
  state(): string;
  inFlight(): number;
  workerLimit(): number;
  startedAt: number;
}

/**
 * The replica's heartbeat: every heartbeatMs, one store write renews every lease this replica
 * holds (saving each shard's live counters) and refreshes its row in the replicas table. The
 * answer says what became of each lease's batch, and the tasks react:
 *   lease not held any more → lease_lost (another replica took it over; write nothing more)
 *   batch gone or finished elsewhere → delete      batch cancelling → cancel
 * Self-fencing: the store counts a lease's TTL from when the last good heartbeat *ran*, so when
 * none has succeeded for nearly a TTL since the last good one was sent (the store unreachable, a
 * call hanging), the leases must be presumed about to be taken over: every task stops as
 * lease_lost one heartbeat before that can happen, and `fresh()` is false (nothing new is claimed)
 * until a heartbeat succeeds again.
 */
export class LeaseKeeper {
  readonly #ctx: EngineContext;
  readonly #src: KeeperSource;
  #timer: NodeJS.Timeout | null = null;
  #beating: Promise<void> | null = null;
  /** When the last heartbeat that succeeded was sent. */
  #lastSuccess = Date.now();
  #fenced = false;

  constructor(ctx: EngineContext, src: KeeperSource) {
    this.#ctx = ctx;
    this.#src = src;
  }

  start(): void {
    this.#timer ??= setInterval(() => {
      this.#watch();
      void this.beat();
    }, this.#ctx.opts.heartbeatMs);
    this.#timer.unref();
  }

  /** Whether this replica's leases can be trusted (a heartbeat succeeded recently enough). */
  fresh(): boolean {
    return !this.#fenced;
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#beating;
    await this.beat();
  }

  /** One heartbeat (never two at once); never rejects. */
  beat(): Promise<void> {
    this.#beating ??= this.#beat().finally(() => {
      this.#beating = null;
    });
    return this.#beating;
  }

  async #beat(): Promise<void> {
    const { store, replica, opts, log } = this.#ctx;
    const tasks = [...this.#src.tasks()];
    const shards: Array<ShardFence & ShardProgress> = [];
    const batches: LeaseFence[] = [];
    const shardTask = new Map<string, LocalTask>();
    const batchTask = new Map<string, LocalTask>();
    for (const t of tasks) {
      const l = t.lease();
      if (l.kind === 'shard') {
        shards.push({ ...l.fence, ...l.progress });
        shardTask.set(`${l.fence.batchId}/${l.fence.shardNo}`, t);
      } else {
        batches.push(l.fence);
        batchTask.set(l.fence.batchId, t);
      }
    }
    const h: Heartbeat = {
      replica: {
        id: replica.id,
        host: replica.host,
        pid: replica.pid,
        version: replica.version,
        startedAt: this.#src.startedAt,
        state: this.#src.state(),
        inFlight: this.#src.inFlight(),
        workerLimit: this.#src.workerLimit(),
      },
      leaseMs: opts.leaseTtlMs,
      shards,
      batches,
    };
    const sentAt = Date.now();
    let result;
    try {
      result = await store.heartbeat(h);
    } catch (err) {
      log.warn({ err, silentMs: Date.now() - this.#lastSuccess }, 'heartbeat failed');
      this.#watch();
      return;
    }
    this.#lastSuccess = sentAt;
    if (this.#fenced) log.info({}, 'heartbeats succeed again: claiming work again');
    this.#fenced = false;
    const react = (task: LocalTask | undefined, held: boolean, status: BatchStatus | null): void => {
      if (!task) return;
      if (!held) task.stop('lease_lost');
      else if (status === null || isTerminal(status)) task.stop('delete');
      else if (status === 'cancelling') task.stop('cancel');
    };
    for (const r of result.shards) react(shardTask.get(`${r.batchId}/${r.shardNo}`), r.held, r.batchStatus);
    for (const r of result.batches) react(batchTask.get(r.batchId), r.held, r.batchStatus);
  }

  /** Self-fences when no heartbeat has succeeded for a TTL less one heartbeat (see the class comment). */
  #watch(): void {
    const { opts, log } = this.#ctx;
    const silentMs = Date.now() - this.#lastSuccess;
    if (silentMs < opts.leaseTtlMs - opts.heartbeatMs) return;
    const tasks = [...this.#src.tasks()];
    if (!this.#fenced || tasks.length > 0) {
      log.error({ silentMs, tasks: tasks.length }, 'no heartbeat succeeded for nearly a lease TTL: stopping every task, claiming nothing until one does');
    }
    this.#fenced = true;
    for (const t of tasks) t.stop('lease_lost');
  }
}
