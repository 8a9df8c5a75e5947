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
 * When heartbeats keep failing (the store is unreachable) for longer than the lease TTL, the
 * leases must be presumed taken over: every task stops as lease_lost (self-fencing).
 */
export class LeaseKeeper {
  readonly #ctx: EngineContext;
  readonly #src: KeeperSource;
  #timer: NodeJS.Timeout | null = null;
  #beating: Promise<void> | null = null;
  #lastSuccess = Date.now();

  constructor(ctx: EngineContext, src: KeeperSource) {
    this.#ctx = ctx;
    this.#src = src;
  }

  start(): void {
    this.#lastSuccess = Date.now();
    this.#timer ??= setInterval(() => void this.beat(), this.#ctx.opts.heartbeatMs);
    this.#timer.unref();
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
    let result;
    try {
      result = await store.heartbeat(h);
    } catch (err) {
      const silentMs = Date.now() - this.#lastSuccess;
      log.warn({ err, silentMs }, 'heartbeat failed');
      if (silentMs > opts.leaseTtlMs) {
        log.error({ silentMs }, 'no heartbeat for longer than the lease TTL: stopping every task (its leases may have been taken over)');
        for (const t of tasks) t.stop('lease_lost');
      }
      return;
    }
    this.#lastSuccess = Date.now();
    const react = (task: LocalTask | undefined, held: boolean, status: BatchStatus | null): void => {
      if (!task) return;
      if (!held) task.stop('lease_lost');
      else if (status === null || isTerminal(status)) task.stop('delete');
      else if (status === 'cancelling') task.stop('cancel');
    };
    for (const r of result.shards) react(shardTask.get(`${r.batchId}/${r.shardNo}`), r.held, r.batchStatus);
    for (const r of result.batches) react(batchTask.get(r.batchId), r.held, r.batchStatus);
  }
}
