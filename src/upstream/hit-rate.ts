import type { MetricsSample } from './server-metrics.js';

/**
 * The prefix-cache hit rate of recent samples: vLLM's hit and query counters (tokens), differenced
 * between scrapes and summed with a decay (a window of ~10 scrapes), or SGLang's own gauge.
 */
export class HitRateMeter {
  #prevQueries: number | null = null;
  #prevHits: number | null = null;
  #queries = 0;
  #hits = 0;
  #gauge: number | null = null;

  add(s: MetricsSample): void {
    this.#gauge = s.prefixHitRate;
    if (s.prefixQueries === null || s.prefixHits === null) return;
    if (this.#prevQueries !== null && this.#prevHits !== null) {
      let dq = s.prefixQueries - this.#prevQueries;
      let dh = s.prefixHits - this.#prevHits;
      // Counters that went back: the server restarted and counts from zero.
      if (dq < 0 || dh < 0) {
        dq = s.prefixQueries;
        dh = s.prefixHits;
      }
      this.#queries = this.#queries * 0.9 + dq;
      this.#hits = this.#hits * 0.9 + dh;
    }
    this.#prevQueries = s.prefixQueries;
    this.#prevHits = s.prefixHits;
  }

  /** 0..1, or null while nothing was queried. */
  get rate(): number | null {
    if (this.#queries >= 1) return Math.min(1, this.#hits / this.#queries);
    return this.#gauge;
  }
}
