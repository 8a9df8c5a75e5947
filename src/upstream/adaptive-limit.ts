/**
 * MAX_WORKERS=auto for one upstream: how many requests to keep in flight, found by hill-climbing
 * on measured throughput (completed requests per second).
 *
 *  - start at `initial` (8): a value every inference server takes;
 *  - slow start: one more per completed request while latency stays near the lowest seen (the
 *    limit doubles every round trip); when latency climbs, jump to the knee estimated by Little's
 *    law, then grow by 25 % steps while throughput keeps rising by ≥ 5 %;
 *  - when a step brought no throughput gain but latency climbed, the server is past its knee: the
 *    knee lies between the last two limits, so settle half-way (extra requests only queue there,
 *    while too few would idle slots) and hold;
 *  - while holding, probe now and then: a step up (kept if throughput rises) and a step down
 *    (kept if throughput stays within 3 % of the best seen while latency falls), so the limit
 *    follows a server that got faster or slower;
 *  - 429, 503 and timeouts: multiplicative back-off (× 0.7) and a fresh climb.
 *
 * Only windows in which the limit was actually reached count: with less demand than the limit,
 * the figures say nothing about the server. The window right after a change is skipped too (it
 * mixes requests sent under the old limit). A window lasts at least `minWindowMs` and three
 * average latencies, so it holds enough completions to be measured.
 */
export interface AdaptiveLimitOptions {
  initial: number;
  min: number;
  max: number;
  minWindowMs: number;
}

export const defaultAdaptiveOptions: AdaptiveLimitOptions = { initial: 8, min: 1, max: 1024, minWindowMs: 250 };

type Phase = 'slow_start' | 'climb' | 'hold' | 'probe_up' | 'probe_down';

interface Sample {
  limit: number;
  throughput: number;
  latencyMs: number;
}

const HOLD_WINDOWS = 8;

export class AdaptiveLimit {
  readonly #o: AdaptiveLimitOptions;
  #limit: number;
  #phase: Phase = 'slow_start';
  #prev: Sample | null = null;
  /** Where a probe returns to when it does not pay off. */
  #holdLimit = 0;
  #bestThroughput = 0;
  #holdLatency = 0;
  #holdWindows = 0;
  #nextProbeUp = true;

  // Current window.
  #windowStart: number;
  #completions = 0;
  #latencySum = 0;
  #overloads = 0;
  #saturatedCompletions = 0;
  #lastLatencyMs = 0;
  #closeAt: number | null = null;
  #lastCutAt = -Infinity;
  #settling = false;
  #minLatencyMs = Infinity;
  #latencyEwma = 0;

  constructor(opts: Partial<AdaptiveLimitOptions> = {}, now = performance.now()) {
    this.#o = { ...defaultAdaptiveOptions, ...opts };
    this.#limit = clamp(this.#o.initial, this.#o.min, this.#o.max);
    this.#windowStart = now;
  }

  /** The whole number of requests to keep in flight. */
  get limit(): number {
    return Math.max(this.#o.min, Math.round(this.#limit));
  }

  get phase(): Phase {
    return this.#phase;
  }

  /**
   * One request ended. `inFlightAtStart` is how many were in flight on this upstream when it was
   * sent (itself included); `overload` for 429, 503 and timeouts. Returns true when the limit changed.
   */
  record(latencyMs: number, inFlightAtStart: number, overload: boolean, now = performance.now()): boolean {
    const before = this.limit;
    // A window closes after the last completion at its closing instant (answers often come in
    // bursts with one timestamp; splitting a burst between windows would skew both).
    if (this.#closeAt !== null && now > this.#closeAt) this.#endWindow(this.#closeAt);
    this.#completions++;
    this.#latencySum += latencyMs;
    this.#lastLatencyMs = latencyMs;
    const saturatedNow = inFlightAtStart >= 0.8 * this.limit;
    if (saturatedNow) this.#saturatedCompletions++;
    if (latencyMs < this.#minLatencyMs) this.#minLatencyMs = latencyMs;
    this.#latencyEwma = this.#latencyEwma === 0 ? latencyMs : this.#latencyEwma * 0.8 + latencyMs * 0.2;
    if (this.#phase === 'slow_start' && !overload && saturatedNow) {
      this.#slowStartStep(now);
      return this.limit !== before;
    }
    if (overload) {
      this.#overloads++;
      // At most one cut per window's time: a burst of 429s is one signal, not fifty.
      if (now - this.#lastCutAt >= Math.max(this.#o.minWindowMs, latencyMs)) {
        this.#lastCutAt = now;
        this.#endWindow(now);
      }
    } else if (this.#closeAt === null) {
      const elapsed = now - this.#windowStart;
      const avgLatency = this.#latencySum / this.#completions;
      if (elapsed >= this.#o.minWindowMs && elapsed >= 3 * avgLatency && this.#completions >= 8) this.#closeAt = now;
    }
    return this.limit !== before;
  }

  #endWindow(end: number): void {
    const elapsedMs = Math.max(1, end - this.#windowStart);
    const latencyMs = this.#completions > 0 ? this.#latencySum / this.#completions : 0;
    const saturated = this.#saturatedCompletions >= 0.75 * this.#completions;
    const overloaded = this.#overloads > 0;
    const cur: Sample = { limit: this.#limit, throughput: (this.#completions * 1000) / elapsedMs, latencyMs };
    this.#windowStart = end;
    this.#closeAt = null;
    this.#completions = this.#latencySum = this.#overloads = this.#saturatedCompletions = 0;
    const settling = this.#settling;
    this.#settling = false;
    if (overloaded) {
      this.#settling = true;
      this.#lastCutAt = end;
      this.#limit = Math.max(this.#o.min, this.#limit * 0.7);
      this.#phase = 'climb';
      this.#prev = null;
      this.#bestThroughput = 0;
      return;
    }
    // The window after a change mixes requests sent under the old limit: it measures neither.
    if (!saturated || settling) return;
    const was = this.limit;
    this.#step(cur);
    this.#limit = clamp(this.#limit, this.#o.min, this.#o.max);
    if (this.limit !== was) this.#settling = true;
  }

  /**
   * Slow start, per completion (like TCP's): one more while latency stays near the lowest seen,
   * which doubles the limit every round trip. Once latency climbs, requests have started to queue:
   * by Little's law the server completes limit ÷ latency per ms, which it did at the lowest
   * latency with limit × min ÷ latency in flight — the knee. Start the careful climb from a
   * little above it.
   */
  #slowStartStep(now: number): void {
    if (this.#latencyEwma <= 1.3 * this.#minLatencyMs) {
      this.#limit = Math.min(this.#o.max, this.#limit + 1);
      return;
    }
    this.#limit = clamp(1.1 * this.#limit * (this.#minLatencyMs / this.#latencyEwma), this.#o.min, this.#o.max);
    this.#phase = 'climb';
    this.#prev = null;
    this.#settling = true;
    this.#windowStart = now;
    this.#closeAt = null;
    this.#completions = this.#latencySum = this.#overloads = this.#saturatedCompletions = 0;
  }

  #step(cur: Sample): void {
    const prev = this.#prev;
    switch (this.#phase) {
      case 'slow_start':
      case 'climb': {
        if (prev === null || cur.limit <= prev.limit) {
          this.#prev = cur;
          this.#limit = this.#phase === 'slow_start' ? cur.limit * 2 : cur.limit * 1.25;
          return;
        }
        const gain = cur.throughput / prev.throughput;
        const grew = cur.limit / prev.limit;
        if (this.#phase === 'slow_start' && gain >= 1 + 0.6 * (grew - 1)) {
          this.#prev = cur;
          this.#limit = cur.limit * 2;
        } else if (gain >= 1.05) {
          this.#phase = 'climb';
          this.#prev = cur;
          this.#limit = cur.limit * 1.25;
        } else {
          // Past the knee: it lies between prev.limit and cur.limit.
          this.#hold((prev.limit + cur.limit) / 2, Math.max(cur.throughput, prev.throughput), cur.latencyMs);
        }
        return;
      }
      case 'hold': {
        this.#bestThroughput = Math.max(this.#bestThroughput * 0.995, cur.throughput);
        if (++this.#holdWindows < HOLD_WINDOWS) return;
        this.#holdWindows = 0;
        this.#holdLatency = cur.latencyMs;
        this.#phase = this.#nextProbeUp ? 'probe_up' : 'probe_down';
        this.#limit = this.#nextProbeUp ? this.#holdLimit * 1.25 : Math.max(this.#o.min, this.#holdLimit * 0.85);
        this.#nextProbeUp = !this.#nextProbeUp;
        return;
      }
      case 'probe_up': {
        if (cur.throughput >= this.#bestThroughput * 1.05) {
          this.#phase = 'climb';
          this.#prev = cur;
          this.#limit = cur.limit * 1.25;
        } else {
          this.#back();
        }
        return;
      }
      case 'probe_down': {
        if (cur.throughput >= this.#bestThroughput * 0.97 && cur.latencyMs < this.#holdLatency) this.#hold(cur.limit, this.#bestThroughput, cur.latencyMs);
        else this.#back();
        return;
      }
    }
  }

  #hold(limit: number, throughput: number, latencyMs: number): void {
    this.#phase = 'hold';
    this.#limit = this.#holdLimit = limit;
    this.#bestThroughput = throughput;
    this.#holdLatency = latencyMs;
    this.#holdWindows = 0;
    this.#prev = null;
  }

  #back(): void {
    this.#phase = 'hold';
    this.#limit = this.#holdLimit;
    this.#holdWindows = 0;
  }

  get lastLatencyMs(): number {
    return this.#lastLatencyMs;
  }
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
