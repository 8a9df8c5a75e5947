import type { ThroughputTracker } from '../analytics/index.js';
import { type BatchRecord, RUNNING_STATUSES } from '../domain/index.js';
import type { MetaStore } from '../store/meta-store.js';

const PAGE = 200;

/**
 * Once a second, the batches being run anywhere in the cluster with their live counters (summed
 * over their shards by the store): samples each batch's throughput for the dashboard's rates and
 * ETAs, and hands the list to listeners (the SSE streams' progress events).
 */
export class ClusterProgress {
  readonly #store: MetaStore;
  readonly #rates: ThroughputTracker;
  readonly #intervalMs: number;
  readonly #listeners = new Set<(running: readonly BatchRecord[]) => void>();
  #timer: NodeJS.Timeout | null = null;
  #polling = false;

  constructor(store: MetaStore, rates: ThroughputTracker, intervalMs = 1000) {
    this.#store = store;
    this.#rates = rates;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.#poll(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  onTick(listener: (running: readonly BatchRecord[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const pages = await Promise.all(RUNNING_STATUSES.map((status) => this.#store.listBatchesPage({ status, limit: PAGE, offset: 0 })));
      const running = pages.flatMap((p) => p.data);
      for (const b of running) this.#rates.sample(b.id, b.requestCounts.completed + b.requestCounts.failed);
      for (const l of this.#listeners) l(running);
    } catch (err) {
      process.emitWarning(`cluster progress poll failed: ${String(err)}`);
    } finally {
      this.#polling = false;
    }
  }
}
