/**
 * MAX_WORKERS=auto for an upstream that exports its scheduler's state (vLLM, SGLang): how many
 * requests BESH keeps outstanding there, steered by the server's own queue instead of latency.
 *
 * A continuous-batching server is at full throughput when its running batch is full, and a small
 * waiting queue keeps it full across the round trip BESH needs to send the next request after one
 * finishes. So the controller holds BESH's share of the server's waiting queue at a target T:
 *
 *     limit ← outstanding − waiting + T
 *
 * (`outstanding − waiting` is what BESH has running there, plus in transit). That is a
 * measurement, not an estimate built up over time: it holds whatever the latency, its fixed point
 * is the server's batch size + transit + T, and a wrong limit is corrected on the next sample
 * instead of being wound up.
 *
 * T = max(queueMin, queueFraction × running, 2 × completions per engine step). One step's
 * completions must be refillable from the queue at once, and the same number of requests can be
 * seen waiting only because they arrived during the step under way (no backlog), so the target
 * sits above that. Completions per step need no clock: steps = generated tokens ÷ running (one
 * token per running sequence per step), so per step = BESH's completions × running ÷ tokens.
 *
 * Per sample:
 *  - queue above T while the batch did not grow: the server is full; move half-way to the
 *    formula (halving damps the sampling noise of `waiting`). While the batch grows, the queue
 *    is a prefill backlog being admitted: hold. Never pulled below 90 % of the largest batch seen
 *    unless KV is short: a batch that shrank says the queue was no backlog (requests that arrived
 *    during the engine step under way), and cutting on it would spiral down. The largest batch
 *    seen decays only while requests stay stuck below it, and is forgotten when the server's
 *    counters go back (a restart).
 *  - queue below T/2 and the limit reached: grow. Until the server has first been seen full:
 *    slow start, doubling up to 64 and then growing by half (the batch size is unknown, and an
 *    overshoot is a queue that drains only as requests complete: half a batch at most). After:
 *    fill the slots it is known to have (largest batch seen − running) plus T, and by 25 % when
 *    two samples running had room (the batch can grow, e.g. shorter prompts leave KV room) —
 *    except with headroom, where BESH only fills slots it sees free.
 *  - in between: towards the formula (the steady state).
 *  - KV cache ≥ kvHigh (0.9): no queue and no growth, which takes T off the limit: queued requests
 *    would be admitted into the last free blocks, and the running sequences then run out of
 *    blocks to grow into. If vLLM did preempt since the last sample (`num_preemptions` rose),
 *    give up 10 % of BESH's running share. KV usage alone does not shrink the batch: a server at
 *    95 % that never preempts is simply well used.
 *  - 429 / 503 / timeouts (`overload()`): × 0.7 at the next sample.
 *
 * Headroom h > 0 (interactive traffic beside the batch): T is only the transit (2 × completions
 * per step, 0 until measured) and the whole waiting queue counts, so BESH backs off while anyone
 * else's requests wait beyond the step under way; once the server's batch size C is
 * known, BESH's limit is capped at (1 − h) × C, leaving h × C slots for others. The price is
 * BESH's throughput: at most (1 − h) of the server, and a little less (with no queue a freed slot
 * idles for one engine step until BESH's next request arrives); the gain is that an interactive
 * request finds a free slot instead of queueing behind the batch. Without headroom only BESH's
 * own share of the queue (at most outstanding − running) counts: other clients' queued requests
 * do not make BESH yield.
 *
 * Max slowdown S > 0 (BESH_UPSTREAM_MAX_SLOWDOWN, servers that export the inter-token-latency
 * histogram): on a continuous-batching server every running sequence slows every other one's
 * decode steps, so free slots alone do not keep an interactive user's latency. BESH keeps the
 * server's mean inter-token latency over each sample within S × the lowest it has measured (when
 * BESH had least there: it starts at SLOWDOWN_START and grows from it). The step time grows about
 * linearly with the batch, so BESH's running share m is scaled by (S − 1) / (r − 1), r being the
 * measured slowdown: at once when that is a cut, half-way per sample when it is growth; the queue
 * target is the transit only, as with headroom.
 */
export interface LoadSignalOptions {
  initial: number;
  min: number;
  max: number;
  /** The waiting-queue target T is max(queueMin, queueFraction × running, 2 × completions per step). */
  queueMin: number;
  queueFraction: number;
  /** KV-cache usage from which no queue is kept and the limit does not grow. */
  kvHigh: number;
  /** 0..0.9: the share of the server BESH leaves to other clients. */
  headroom: number;
  /** > 1: the most BESH may slow the server's inter-token latency down, as a factor; 0 = no bound. */
  maxSlowdown: number;
}

export const defaultLoadSignalOptions: LoadSignalOptions = {
  // A server that exports vLLM's or SGLang's figures takes 32 at once under any setting worth
  // running; it is where the controller starts when it takes over from a lower limit.
  initial: 32,
  min: 1,
  max: 1024,
  // Queued requests cost a batch nothing and too few idle GPU slots, so the target errs high:
  // at least 4, and 10 % of the batch when completions per step are not known.
  queueMin: 4,
  queueFraction: 0.1,
  kvHigh: 0.9,
  headroom: 0,
  maxSlowdown: 0,
};

/** Where BESH starts on a server with a max slowdown: its lowest latency is measured from there. */
const SLOWDOWN_START = 4;
/** Fewer tokens in a sample say too little of the inter-token latency. */
const ITL_MIN_TOKENS = 16;

/** One scrape of the server's scheduler state. */
export interface LoadSignal {
  running: number;
  waiting: number;
  /** 0..1; null when the server does not export it. */
  kvUsage: number | null;
  /** vLLM's preemption counter (running sequences evicted for lack of KV blocks); null when absent. */
  preemptions: number | null;
  /** The server's generated-tokens counter; null when absent (T then ignores completions per step). */
  generationTokens: number | null;
  /** The inter-token-latency histogram's sum (seconds) and count (tokens); absent when not exported. */
  itlSeconds?: number;
  itlTokens?: number;
}

export class LoadSignalLimit {
  readonly #o: LoadSignalOptions;
  #limit: number;
  #prev: LoadSignal | null = null;
  #prevCompleted = 0;
  /** Completions per engine step (EWMA); 0 until measured. */
  #perStep = 0;
  /** The largest batch seen running (see `stuck` for how it decays). */
  #capacity = 0;
  #seenFull = false;
  #roomBefore = false;
  #overloaded = false;
  #queue: number;
  /** The lowest mean inter-token latency measured over a sample (s); Infinity until measured. */
  #itlBase = Infinity;
  /** The last sample's inter-token-latency slowdown against #itlBase; null when not measured. */
  #slowdown: number | null = null;

  constructor(opts: Partial<LoadSignalOptions> = {}) {
    this.#o = { ...defaultLoadSignalOptions, ...opts };
    if (!(this.#o.headroom >= 0 && this.#o.headroom <= 0.9)) throw new Error('headroom must be between 0 and 0.9');
    if (!(this.#o.maxSlowdown === 0 || this.#o.maxSlowdown > 1)) throw new Error('maxSlowdown must be 0 (off) or above 1');
    const initial = this.#o.maxSlowdown > 0 ? Math.min(this.#o.initial, SLOWDOWN_START) : this.#o.initial;
    this.#limit = clamp(initial, this.#o.min, this.#o.max);
    this.#queue = this.#yields ? 0 : this.#o.queueMin;
  }

  /** Whether BESH yields to other clients (headroom or a max slowdown): only the transit may queue. */
  get #yields(): boolean {
    return this.#o.headroom > 0 || this.#o.maxSlowdown > 0;
  }

  /** The server's inter-token latency in the last sample against the lowest measured; null when unknown. */
  get slowdown(): number | null {
    return this.#slowdown;
  }

  /** The whole number of requests BESH may have outstanding on this server. */
  get limit(): number {
    return Math.max(this.#o.min, Math.round(this.#limit));
  }

  /** The part of the limit that keeps the server's batch busy (the rest is queue). */
  get floor(): number {
    return Math.max(this.#o.min, this.limit - this.#queue);
  }

  /** The server's batch size as seen once it was full; 0 until then. */
  get capacity(): number {
    return this.#seenFull ? Math.round(this.#capacity) : 0;
  }

  /** The current waiting-queue target T. */
  get queueTarget(): number {
    return this.#queue;
  }

  /** 429, 503 or a timeout: cut at the next sample. */
  overload(): void {
    this.#overloaded = true;
  }

  /**
   * One sample. `outstanding`: BESH's requests on this server now; `peakOutstanding`: the most
   * since the previous sample (whether the limit was reached); `completed`: BESH's requests this
   * server has answered so far (a counter). Returns true when the limit changed.
   */
  update(s: LoadSignal, outstanding: number, peakOutstanding: number, completed: number): boolean {
    const o = this.#o;
    const before = this.limit;
    const running = Math.max(0, s.running);
    const waiting = Math.max(0, s.waiting);
    const kv = s.kvUsage ?? 0;
    let prev = this.#prev;
    this.#prev = s;
    if (prev !== null && restarted(prev, s)) {
      // What was learned is of a server that is gone; the limit stays, the rest is relearned.
      prev = null;
      this.#capacity = 0;
      this.#seenFull = false;
      this.#perStep = 0;
      this.#itlBase = Infinity;
    }
    const admitting = prev !== null && running > prev.running;
    const preempted = s.preemptions !== null && prev?.preemptions != null && s.preemptions > prev.preemptions;
    this.#measurePerStep(s, prev, completed);
    const itl = this.#measureItl(s, prev);

    const mine = clamp(outstanding - running, 0, waiting);
    const queued = this.#yields ? waiting : mine;
    const kvHigh = kv >= o.kvHigh;
    // Requests that arrived during the engine step under way wait for its end without being a
    // backlog: when yielding (headroom, max slowdown), that transit is all the queue BESH tolerates.
    const transit = Math.ceil(2 * this.#perStep);
    const target = kvHigh ? 0 : this.#yields ? transit : Math.max(o.queueMin, Math.ceil(o.queueFraction * running), transit);
    this.#queue = target;
    const stuck = queued > target && !admitting;
    // Requests stuck waiting at a smaller batch (its KV is short, or it was reconfigured): the
    // batch size seen decays, by half in ~14 such samples. A batch that is merely below it (less
    // demand, or headroom) says nothing about it.
    if (running >= this.#capacity) this.#capacity = running;
    else if (stuck) this.#capacity = Math.max(running, this.#capacity * 0.95);
    const cur = this.limit;
    const reached = peakOutstanding >= cur - Math.max(1, Math.ceil(0.05 * cur));
    const formula = outstanding - queued + target;
    const batchFull = kvHigh || running >= 0.9 * this.#capacity || (this.#yields && waiting > mine);
    const room = queued <= target / 2 && reached && !kvHigh;

    let next = this.#limit;
    if (this.#overloaded) {
      this.#overloaded = false;
      next *= 0.7;
    } else if (preempted) {
      next = towards(next, 0.9 * (outstanding - mine), true);
    } else if (queued > target) {
      if (stuck && batchFull) {
        this.#seenFull = true;
        next = towards(next, formula, true);
      }
    } else if (room) {
      const free = formula + Math.max(0, this.#capacity - running);
      if (!this.#seenFull) next = Math.max(formula, Math.min(2 * next, next + Math.max(SLOW_START_STEP, 0.5 * next)));
      else if (this.#yields) next = Math.max(next, free);
      else next = Math.max(next, free, this.#roomBefore ? 1.25 * next : 0);
    } else if (reached && !kvHigh) {
      next = towards(next, formula, false);
    }
    this.#roomBefore = room;
    if (o.headroom > 0 && this.#seenFull) next = Math.min(next, (1 - o.headroom) * this.#capacity);
    this.#slowdown = itl === null || !Number.isFinite(this.#itlBase) ? null : itl / this.#itlBase;
    if (o.maxSlowdown > 0 && this.#slowdown !== null) {
      const r = this.#slowdown;
      const m = Math.max(1, outstanding - mine);
      const fit = r > 1 ? (m * (o.maxSlowdown - 1)) / (r - 1) : 2 * m;
      // Down at once (an interactive user feels every sample spent above S), up half-way.
      next = Math.min(next, (fit < m ? fit : m + 0.5 * (Math.min(fit, 2 * m) - m)) + target);
    } else if (o.maxSlowdown > 0 && s.itlTokens !== undefined) {
      // The base is measured at the start, before BESH grows.
      next = Math.min(next, this.#limit);
    }
    this.#limit = clamp(next, o.min, o.max);
    return this.limit !== before;
  }

  /** The mean inter-token latency (s) over the sample, and the lowest one seen; null when not measured. */
  #measureItl(s: LoadSignal, prev: LoadSignal | null): number | null {
    if (prev === null || s.itlSeconds === undefined || s.itlTokens === undefined || prev.itlSeconds === undefined || prev.itlTokens === undefined) return null;
    const tokens = s.itlTokens - prev.itlTokens;
    const seconds = s.itlSeconds - prev.itlSeconds;
    if (tokens < ITL_MIN_TOKENS || seconds <= 0) return null;
    const itl = seconds / tokens;
    if (itl < this.#itlBase) this.#itlBase = itl;
    return itl;
  }

  #measurePerStep(s: LoadSignal, prev: LoadSignal | null, completed: number): void {
    const done = completed - this.#prevCompleted;
    this.#prevCompleted = completed;
    if (prev === null || s.generationTokens === null || prev.generationTokens === null) return;
    const tokens = s.generationTokens - prev.generationTokens;
    const running = (s.running + prev.running) / 2;
    // A counter that went back is a restarted server; too few tokens say nothing.
    if (tokens < 1 || done < 0 || running < 1) return;
    const perStep = (done * running) / tokens;
    this.#perStep = this.#perStep === 0 ? perStep : 0.7 * this.#perStep + 0.3 * perStep;
  }
}

/** A counter went back: the server restarted. */
const restarted = (a: LoadSignal, b: LoadSignal): boolean =>
  (a.generationTokens !== null && b.generationTokens !== null && b.generationTokens < a.generationTokens) ||
  (a.preemptions !== null && b.preemptions !== null && b.preemptions < a.preemptions);

/** Half-way to `target`; `downOnly` never raises. */
function towards(cur: number, target: number, downOnly: boolean): number {
  if (downOnly && target >= cur) return cur;
  return cur + 0.5 * (target - cur);
}

/** Slow start doubles up to 64, then grows by half: an overshoot queues up to half a batch, which drains only as fast as requests complete. */
const SLOW_START_STEP = 32;

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
