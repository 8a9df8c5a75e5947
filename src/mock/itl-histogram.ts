/**
 * vLLM's `vllm:inter_token_latency_seconds` histogram: one observation per generated token after
 * a sequence's first, of the step time that produced it. A run of identical steps adds
 * `steps × decoding` observations of the same value at once.
 */
export const ITL_BUCKETS_S = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0] as const;

export interface ItlSnapshot {
  sumSeconds: number;
  count: number;
  /** Cumulative counts per bucket of ITL_BUCKETS_S (`le`), then +Inf (= count). */
  buckets: number[];
}

export class ItlHistogram {
  #sumMs = 0;
  #count = 0;
  /** Non-cumulative counts per bucket; the last one is +Inf. */
  readonly #bins = new Array<number>(ITL_BUCKETS_S.length + 1).fill(0);

  add(stepMs: number, tokens: number): void {
    if (tokens <= 0) return;
    this.#sumMs += stepMs * tokens;
    this.#count += tokens;
    this.#bins[binOf(stepMs)]! += tokens;
  }

  reset(): void {
    this.#sumMs = 0;
    this.#count = 0;
    this.#bins.fill(0);
  }

  /** The histogram now, plus `tokens` observations of `stepMs` not yet added (steps under way). */
  snapshot(stepMs = 0, tokens = 0): ItlSnapshot {
    const bins = [...this.#bins];
    if (tokens > 0) bins[binOf(stepMs)]! += tokens;
    const buckets: number[] = [];
    let acc = 0;
    for (const b of bins) buckets.push((acc += b));
    return { sumSeconds: (this.#sumMs + Math.max(0, tokens) * stepMs) / 1000, count: this.#count + Math.max(0, tokens), buckets };
  }
}

function binOf(stepMs: number): number {
  const s = stepMs / 1000;
  const i = ITL_BUCKETS_S.findIndex((le) => s <= le);
  return i < 0 ? ITL_BUCKETS_S.length : i;
}
