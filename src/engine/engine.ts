import { type BatchLive, batchNotFound, type BatchRecord, ConflictError, isTerminal, nowSeconds, type RequestCounts, type Usage } from '../domain/index.js';
import type { BlobStore } from '../store/blob-store.js';
import type { MetaStore } from '../store/meta-store.js';
import type { Upstream } from '../upstream/upstream.js';
import { BatchRunner } from './batch-runner.js';
import { type EngineContext, type EngineOptions, errorKey, type Logger, outputKey } from './engine-context.js';
import { EngineEvents } from './engine-events.js';
import { FairSlots } from './fair-slots.js';

/**
 * The scheduler: admits up to maxConcurrentBatches batches in creation order, runs one
 * BatchRunner each, and shares MAX_WORKERS slots fairly between them (FairSlots).
 *
 * States: starting → running → draining → stopped.
 *   running   new batches are queued and admitted as active ones end
 *   draining  SIGTERM: no admission; runners stop taking lines and settle within the grace period
 *   stopped   every runner returned; unfinished batches resume at the next start
 */
export type EngineState = 'starting' | 'running' | 'draining' | 'stopped';

export interface EngineDeps {
  store: MetaStore;
  blobs: BlobStore;
  upstream: Upstream;
  log: Logger;
  maxWorkers: number;
  opts: EngineOptions;
}

interface QueuedBatch {
  id: string;
  project: string;
  expiresAt: number;
}

export interface LiveView {
  counts: RequestCounts;
  usage: Usage;
  live: BatchLive;
}

export class Engine {
  readonly events = new EngineEvents();
  readonly slots: FairSlots;
  #state: EngineState = 'starting';
  readonly #ctx: EngineContext;
  /** Waiting for admission, oldest first. */
  readonly #queue: QueuedBatch[] = [];
  readonly #active = new Map<string, { runner: BatchRunner; project: string; done: Promise<void> }>();
  /** When each project last had a batch admitted (a counter, not a clock). */
  readonly #admittedAt = new Map<string, number>();
  #admissions = 0;
  #expiryTimer: NodeJS.Timeout | null = null;

  constructor(deps: EngineDeps) {
    this.slots = new FairSlots(deps.maxWorkers);
    this.#ctx = { store: deps.store, blobs: deps.blobs, upstream: deps.upstream, slots: this.slots, events: this.events, log: deps.log, opts: deps.opts };
  }

  get state(): EngineState {
    return this.#state;
  }
  get activeCount(): number {
    return this.#active.size;
  }
  /** Batches waiting for admission with their project, in the order they will be admitted per project. */
  get queued(): ReadonlyArray<{ id: string; project: string }> {
    return this.#queue.map(({ id, project }) => ({ id, project }));
  }
  /** Batches running now, per project. */
  activeIn(project: string): number {
    let n = 0;
    for (const a of this.#active.values()) if (a.project === project) n++;
    return n;
  }

  /** Takes up every unfinished batch: the ones that were running first, then the queue in order. */
  async start(): Promise<void> {
    const unfinished = await this.#ctx.store.listUnfinishedBatches();
    this.#state = 'running';
    const wasRunning = unfinished.filter((b) => b.status !== 'validating');
    const waiting = unfinished.filter((b) => b.status === 'validating');
    for (const b of wasRunning) this.#launch(b.id, b.project);
    for (const b of waiting) this.#queue.push({ id: b.id, project: b.project, expiresAt: b.expiresAt });
    if (unfinished.length > 0) this.#ctx.log.info({ resumed: wasRunning.length, queued: waiting.length }, 'engine resumed unfinished batches');
    this.#admit();
    // Batches still waiting for admission can reach their deadline too.
    this.#expiryTimer = setInterval(() => void this.#expireQueued(), 1000);
    this.#expiryTimer.unref();
  }

  /** A batch was created (status validating): queue it. */
  submit(batch: BatchRecord): void {
    this.#logStatus(batch);
    this.events.safeEmit('batch:status', batch);
    if (this.#state !== 'running') return; // picked up at next start
    this.#queue.push({ id: batch.id, project: batch.project, expiresAt: batch.expiresAt });
    this.#admit();
  }

  /** OpenAI cancel semantics: cancelling → cancelled; 409 on a finished batch. */
  async cancel(id: string): Promise<BatchRecord> {
    const { store } = this.#ctx;
    const batch = await store.getBatch(id);
    if (!batch) throw batchNotFound(id);
    if (batch.status === 'cancelling' || batch.status === 'cancelled') return batch;
    if (isTerminal(batch.status)) throw new ConflictError(`Cannot cancel a batch with status '${batch.status}'.`);
    if (this.#isQueued(id)) {
      // Never started: nothing to settle.
      const cancelling = await store.transition(id, ['validating'], 'cancelling', nowSeconds());
      if (cancelling) this.#logStatus(cancelling);
      const b = cancelling && (await store.transition(id, ['cancelling'], 'cancelled', nowSeconds()));
      if (b) {
        this.#logStatus(b);
        this.#removeQueued(id);
        this.events.safeEmit('batch:status', b);
        return b;
      }
    }
    const b = await store.transition(id, ['validating', 'in_progress', 'finalizing'], 'cancelling', nowSeconds());
    if (!b) return this.cancel(id); // it moved meanwhile: answer from its new status
    this.#logStatus(b);
    this.events.safeEmit('batch:status', b);
    this.#active.get(id)?.runner.stop('cancel');
    return b;
  }

  /** Stops a batch if it runs and removes it with its output and error files. */
  async deleteBatch(id: string): Promise<BatchRecord> {
    const { store, blobs } = this.#ctx;
    const batch = await store.getBatch(id);
    if (!batch) throw batchNotFound(id);
    this.#removeQueued(id);
    const active = this.#active.get(id);
    if (active) {
      active.runner.stop('delete');
      await active.done;
    }
    const latest = (await store.getBatch(id)) ?? batch;
    for (const fileId of [latest.outputFileId, latest.errorFileId]) {
      if (fileId) await store.deleteFile(fileId);
    }
    await store.deleteBatch(id);
    await blobs.delete(outputKey(id));
    await blobs.delete(errorKey(id));
    this.#ctx.log.info({ batchId: id, status: latest.status }, 'batch deleted');
    this.events.safeEmit('batch:deleted', id, batch.project);
    return latest;
  }

  /** Live figures of a batch, fresher than the store's flushed counters. */
  live(id: string): LiveView | null {
    const a = this.#active.get(id);
    if (!a) return null;
    return { counts: a.runner.counts, usage: a.runner.usage, live: { queuePosition: null, inFlight: a.runner.inFlight } };
  }

  queuePosition(id: string): number | null {
    const pos = this.#queue.findIndex((q) => q.id === id);
    return pos >= 0 ? pos + 1 : null;
  }

  /** Graceful stop: runners stop taking lines and settle within the grace period, then abort. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'draining';
    if (this.#expiryTimer) clearInterval(this.#expiryTimer);
    for (const { runner } of this.#active.values()) runner.stop('shutdown');
    await Promise.all([...this.#active.values()].map((a) => a.done));
    this.#state = 'stopped';
  }

  /** The one info line per status change (the runner logs the changes it makes itself). */
  #logStatus(b: BatchRecord): void {
    this.#ctx.log.info({ batchId: b.id, status: b.status, requestCounts: b.requestCounts }, `batch ${b.status}`);
  }

  /**
   * Admits waiting batches while there is room: each time the oldest batch of the project with
   * the fewest batches running, so one project's queue of fifty batches does not keep another
   * project's batch waiting for all of them (creation order within a project).
   */
  #admit(): void {
    while (this.#state === 'running' && this.#active.size < this.#ctx.opts.maxConcurrentBatches && this.#queue.length > 0) {
      const running = new Map<string, number>();
      for (const a of this.#active.values()) running.set(a.project, (running.get(a.project) ?? 0) + 1);
      // Fewest running first; on a tie the project admitted longest ago (with one slot every
      // project has 0 running at each admission: without this, the queue order would win).
      const rank = (q: QueuedBatch): [number, number] => [running.get(q.project) ?? 0, this.#admittedAt.get(q.project) ?? -1];
      let pick = 0;
      for (let i = 1; i < this.#queue.length; i++) {
        const [r, a] = rank(this.#queue[i]!);
        const [br, ba] = rank(this.#queue[pick]!);
        if (r < br || (r === br && a < ba)) pick = i;
      }
      const [next] = this.#queue.splice(pick, 1);
      this.#admittedAt.set(next!.project, ++this.#admissions);
      this.#launch(next!.id, next!.project);
    }
  }

  #launch(id: string, project: string): void {
    const runner = new BatchRunner(this.#ctx, id, project);
    const done = runner.run().finally(() => {
      this.#active.delete(id);
      this.#admit();
    });
    this.#active.set(id, { runner, project, done });
  }

  #isQueued(id: string): boolean {
    return this.#queue.some((q) => q.id === id);
  }

  #removeQueued(id: string): void {
    const i = this.#queue.findIndex((q) => q.id === id);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  async #expireQueued(): Promise<void> {
    const now = nowSeconds();
    for (const { id } of this.#queue.filter((q) => q.expiresAt <= now)) {
      this.#removeQueued(id);
      const expired = await this.#ctx.store.transition(id, ['validating'], 'expired', now);
      if (expired) {
        this.#logStatus(expired);
        this.events.safeEmit('batch:status', expired);
      }
    }
  }
}
