/** Seconds of progress samples a batch's rate is measured over. */
const WINDOW_MS = 30_000;

export interface BatchRate {
  /** Requests finished per second over the last ~30 s (0 until two samples exist). */
  requestsPerSecond: number;
  /** Seconds until every request is done at that rate; null when unknown. */
  etaSeconds: number | null;
}

/** Per-batch throughput and ETA from the engine's progress ticks (memory only, a few samples each). */
export class ThroughputTracker {
  readonly #samples = new Map<string, Array<{ t: number; done: number }>>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  sample(batchId: string, done: number): void {
    const t = this.#now();
    let s = this.#samples.get(batchId);
    if (!s) this.#samples.set(batchId, (s = []));
    s.push({ t, done });
    while (s.length > 2 && s[0]!.t < t - WINDOW_MS) s.shift();
  }

  forget(batchId: string): void {
    this.#samples.delete(batchId);
  }

  rate(batchId: string, done: number, total: number): BatchRate {
    const s = this.#samples.get(batchId);
    const first = s?.[0];
    const last = s?.at(-1);
    if (!first || !last || last.t - first.t < 500) return { requestsPerSecond: 0, etaSeconds: null };
    const rps = (last.done - first.done) / ((last.t - first.t) / 1000);
    const left = Math.max(0, total - done);
    return { requestsPerSecond: rps, etaSeconds: rps > 0 ? Math.ceil(left / rps) : left === 0 ? 0 : null };
  }
}
