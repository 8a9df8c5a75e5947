import { nowSeconds } from '../domain/index.js';
import { batchPrefix } from '../store/blob-keys.js';
import type { EngineContext } from './engine-context.js';

/** Replicas silent this long are forgotten (the engine panel shows the rest). */
const FORGET_REPLICAS_MS = 3_600_000;
const TOMBSTONE_PAGE = 100;

/**
 * The cluster's housekeeping, run by every replica (each step is a compare-and-set, so two
 * replicas doing it at once do it once):
 *   - batches still waiting for validation whose deadline passed → expired
 *   - deleted batches whose shards no replica holds any more → their blobs, then their rows, removed
 *   - replicas silent for an hour → forgotten
 */
export class Janitor {
  readonly #ctx: EngineContext;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #lastPrune = 0;

  constructor(ctx: EngineContext, intervalMs: number) {
    this.#ctx = ctx;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.sweep(), this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  /** One pass (never two at once); never rejects. */
  sweep(): Promise<void> {
    this.#running ??= this.#sweep()
      .catch((err: unknown) => this.#ctx.log.warn({ err }, 'housekeeping failed'))
      .finally(() => {
        this.#running = null;
      });
    return this.#running;
  }

  /** Removes a deleted batch's blobs and rows now, unless a replica still holds one of its shards. */
  async purge(batchId: string): Promise<boolean> {
    const t = (await this.#ctx.store.listTombstones(TOMBSTONE_PAGE)).find((x) => x.id === batchId);
    if (!t || t.liveLeases > 0) return false;
    await this.#purge(batchId);
    return true;
  }

  async #sweep(): Promise<void> {
    const { store, log, events } = this.#ctx;
    for (const b of await store.expireUnclaimed(nowSeconds())) {
      log.info({ batchId: b.id, status: b.status, requestCounts: b.requestCounts }, `batch ${b.status}`);
      events.safeEmit('batch:status', b);
    }
    for (const t of await store.listTombstones(TOMBSTONE_PAGE)) {
      if (t.liveLeases === 0) await this.#purge(t.id);
    }
    if (Date.now() - this.#lastPrune > FORGET_REPLICAS_MS / 10) {
      this.#lastPrune = Date.now();
      await store.pruneReplicas(FORGET_REPLICAS_MS);
    }
  }

  async #purge(batchId: string): Promise<void> {
    await this.#ctx.blobs.deletePrefix(batchPrefix(batchId));
    await this.#ctx.store.purgeBatch(batchId);
  }
}
