import { type EngineClock, realClock } from './engine-clock.js';
import type { Work } from './generated.js';
import { ItlHistogram, type ItlSnapshot } from './itl-histogram.js';
import { KvLedger } from './kv-ledger.js';
import { MinHeap } from './min-heap.js';
import { PrefixCache } from './prefix-cache.js';
import { blockKeys } from './prompt.js';
import { DECODE, FINISHED, Job, type JobResult, PREFILL, Sequence, WAITING } from './sequence.js';

export interface StepEngineConfig {
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  prefillMsPerToken: number;
  decodeMsPerToken: number;
  decodeGrowthPerSeq: number;
  prefixCacheTokens: number;
  kvCacheTokens: number;
  schedulingPolicy: 'fcfs' | 'priority';
}

export interface JobSpec {
  work: readonly Work[];
  /** Lower runs earlier under the `priority` policy (vLLM's request field). */
  priority: number;
  /** Separates prefix caches (the model name's hash); null = this request does not use the cache. */
  cacheSalt: number | null;
  onDone: (result: JobResult) => void;
}

/** The engine's gauges and counters, for `/metrics` and `/mock/stats`. */
export interface EngineLevels {
  running: number;
  waiting: number;
  kvCacheUsage: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
  interTokenLatency: ItlSnapshot;
}

/** Steps in progress: `k` identical steps of `dt` ms from `start`; only the last may finish prefills. */
interface Run {
  start: number;
  dt: number;
  k: number;
  /** Sequences decoding in these steps (each generates one token per step). */
  decoding: number;
  prefillDone: Sequence[];
}

/**
 * A simulated vLLM engine core: continuous batching in a step loop, on virtual time that follows
 * the wall clock. Each step runs every decoding sequence one token and spends what is left of the
 * token budget on prefill chunks (running prefills first, then newly admitted requests, as vLLM
 * V1's scheduler), and lasts
 *
 *   decodeMs × (1 + growth × (decoding − 1)) + prefillMs × prefill tokens.
 *
 * A sequence is admitted when fewer than maxNumSeqs run and the KV cache has room. Runs of steps
 * that differ only in their token count are jumped in one go (to the next completion), so CPU cost
 * follows requests, not tokens; an arrival or a cancellation cuts such a run at the step under way.
 * Given the arrival times, the schedule is deterministic.
 */
export class StepEngine {
  private readonly ledger: KvLedger;
  private readonly waiting: MinHeap<Sequence>;
  private waitingLive = 0;
  private readonly prefilling: Sequence[] = [];
  private prefillHead = 0;
  private readonly decoding = new MinHeap<Sequence>((a, b) => a.finishStep < b.finishStep || (a.finishStep === b.finishStep && a.order < b.order));
  private running = 0;
  private decodingLive = 0;
  private sumStartSteps = 0;
  /** Steps completed. */
  private step = 0;
  private order = 0;
  private run: Run | null = null;
  private timer: unknown = null;
  /** When idle, the arrival time of the request that wakes the engine: its step starts then. */
  private wakeAt: number | null = null;
  private peakRunning = 0;
  private peakWaiting = 0;
  private readonly itl = new ItlHistogram();

  constructor(
    private readonly cfg: StepEngineConfig,
    private readonly clock: EngineClock = realClock,
  ) {
    this.ledger = new KvLedger(cfg.kvCacheTokens, cfg.prefixCacheTokens > 0 ? new PrefixCache(cfg.prefixCacheTokens) : null);
    this.waiting =
      cfg.schedulingPolicy === 'priority'
        ? new MinHeap((a, b) => a.priority < b.priority || (a.priority === b.priority && a.order < b.order))
        : new MinHeap((a, b) => a.order < b.order);
  }

  /** Queues a request; `onDone` runs once all its sequences finished. Returns it, for `cancel`. */
  submit(spec: JobSpec): Job {
    const now = this.clock.now();
    this.advance(now);
    const job = new Job(spec.onDone);
    const useCache = spec.cacheSalt !== null && this.cfg.prefixCacheTokens > 0;
    for (const w of spec.work) {
      const keys = useCache ? blockKeys(w.prompt, spec.cacheSalt!) : null;
      w.outputs.forEach((out, i) => {
        const seq = new Sequence(job, w.prompt, keys, out, i === 0, spec.priority, this.order++);
        job.seqs.push(seq);
        this.waiting.push(seq);
      });
    }
    job.remaining = job.seqs.length;
    this.waitingLive += job.seqs.length;
    if (this.waitingLive > this.peakWaiting) this.peakWaiting = this.waitingLive;
    if (this.run !== null) {
      if (this.running < this.cfg.maxNumSeqs) this.cut(now);
    } else if (this.wakeAt === null) {
      // The first step starts at this arrival but is planned once the current event-loop turn
      // is over, so requests that arrived together are batched together.
      this.wakeAt = now;
      this.timer = this.clock.setTimer(() => {
        this.timer = null;
        const t = this.wakeAt!;
        this.wakeAt = null;
        this.begin(t);
      }, 0);
    }
    return job;
  }

  /** The client left: its sequences leave the queue or the batch at once, as vLLM aborts them. */
  cancel(job: Job): void {
    if (job.cancelled || job.remaining === 0) return;
    const now = this.clock.now();
    this.advance(now);
    job.cancelled = true;
    for (const seq of job.seqs) {
      if (seq.state === WAITING) this.waitingLive--;
      else if (seq.state !== FINISHED) this.leave(seq);
      seq.state = FINISHED;
    }
    this.cut(now);
  }

  levels(): EngineLevels {
    const now = this.clock.now();
    this.advance(now);
    return {
      running: this.running,
      waiting: this.waitingLive,
      kvCacheUsage: this.ledger.usage(this.generatedTokens(this.step + this.stepsDoneIn(now))),
      prefixCacheQueries: this.ledger.queries,
      prefixCacheHits: this.ledger.hits,
      interTokenLatency: this.run === null ? this.itl.snapshot() : this.itl.snapshot(this.run.dt, this.stepsDoneIn(now) * this.run.decoding),
    };
  }

  get inFlight(): number {
    return this.running;
  }

  get queued(): number {
    return this.waitingLive;
  }

  get maxInFlight(): number {
    return this.peakRunning;
  }

  get maxQueued(): number {
    return this.peakWaiting;
  }

  /** Peaks restart from the current levels, the prefix-cache counters and the inter-token latencies from zero. */
  resetPeaks(): void {
    this.peakRunning = this.running;
    this.peakWaiting = this.waitingLive;
    this.ledger.resetCounters();
    this.itl.reset();
  }

  close(): void {
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
    this.run = null;
    this.wakeAt = null;
  }

  /** Finishes every run of steps that ended by `now`, starting the next ones. */
  private advance(now: number): void {
    while (this.run !== null && this.run.start + this.run.k * this.run.dt <= now) this.finishRun();
  }

  private finishRun(): void {
    const r = this.run!;
    this.run = null;
    const end = r.start + r.k * r.dt;
    this.step += r.k;
    this.itl.add(r.dt, r.k * r.decoding);
    for (const seq of r.prefillDone) {
      if (seq.state !== PREFILL) continue;
      // The step that computes a prompt's last chunk samples its first token.
      if (seq.outputTokens <= 1) {
        this.complete(seq);
      } else {
        seq.state = DECODE;
        seq.startStep = this.step;
        seq.finishStep = this.step + seq.outputTokens - 1;
        this.decoding.push(seq);
        this.decodingLive++;
        this.sumStartSteps += seq.startStep;
      }
    }
    for (let top = this.decoding.peek(); top !== undefined && top.finishStep <= this.step; top = this.decoding.peek()) {
      this.decoding.pop();
      if (top.state === DECODE) this.complete(top);
    }
    this.begin(end);
  }

  /** Plans the step starting at `t`: decodes, prefill chunks, admissions; or idles. */
  private begin(t: number): void {
    const cfg = this.cfg;
    const decoding = this.decodingLive;
    let budget = cfg.maxNumBatchedTokens - decoding;
    let prefillTokens = 0;
    const prefillDone: Sequence[] = [];
    const chunk = (seq: Sequence): void => {
      const take = Math.min(seq.prefillLeft, budget);
      seq.prefillLeft -= take;
      budget -= take;
      prefillTokens += take;
      if (seq.prefillLeft === 0) prefillDone.push(seq);
    };
    for (let i = this.prefillHead; i < this.prefilling.length && budget > 0; i++) {
      const seq = this.prefilling[i]!;
      if (seq.state === PREFILL && seq.prefillLeft > 0) chunk(seq);
    }
    while (budget > 0 && this.running < cfg.maxNumSeqs) {
      const seq = this.nextWaiting();
      if (seq === undefined || !this.ledger.fits(seq, this.running)) break;
      this.waiting.pop();
      this.waitingLive--;
      seq.state = PREFILL;
      seq.prefillLeft = this.ledger.admit(seq);
      if (++this.running > this.peakRunning) this.peakRunning = this.running;
      this.prefilling.push(seq);
      chunk(seq);
    }
    this.compactPrefilling();
    if (decoding === 0 && prefillTokens === 0) {
      this.setTimer(null, t);
      return;
    }
    const dt = cfg.decodeMsPerToken * (1 + cfg.decodeGrowthPerSeq * Math.max(0, decoding - 1)) + cfg.prefillMsPerToken * prefillTokens;
    let k = 1;
    if (prefillTokens === 0 && this.decoding.size > 0) k = Math.max(1, this.decoding.peek()!.finishStep - this.step);
    this.setTimer({ start: t, dt, k, decoding, prefillDone }, t);
  }

  /** Cuts a run of steps at the step under way, so the next step boundary can admit or re-plan. */
  private cut(now: number): void {
    const r = this.run;
    if (r === null || r.k === 1) return;
    const done = Math.min(r.k - 1, this.stepsDoneIn(now));
    this.step += done;
    this.itl.add(r.dt, done * r.decoding);
    this.setTimer({ start: r.start + done * r.dt, dt: r.dt, k: 1, decoding: r.decoding, prefillDone: r.prefillDone }, now);
  }

  /** Whole steps of the current run completed by `now` (the run itself ends later). */
  private stepsDoneIn(now: number): number {
    const r = this.run;
    if (r === null || r.k === 1 || r.dt <= 0) return 0;
    return Math.min(r.k - 1, Math.max(0, Math.floor((now - r.start) / r.dt)));
  }

  private setTimer(run: Run | null, now: number): void {
    this.run = run;
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
    if (run === null) return;
    const wait = Math.max(0, Math.ceil(run.start + run.k * run.dt - now));
    this.timer = this.clock.setTimer(() => {
      this.timer = null;
      const t = this.clock.now();
      this.advance(t);
      if (this.run !== null && this.timer === null) this.setTimer(this.run, t); // woke a little early
    }, wait);
  }

  private nextWaiting(): Sequence | undefined {
    for (let top = this.waiting.peek(); top !== undefined; top = this.waiting.peek()) {
      if (top.state === WAITING) return top;
      this.waiting.pop(); // cancelled while waiting
    }
    return undefined;
  }

  private compactPrefilling(): void {
    const p = this.prefilling;
    while (this.prefillHead < p.length && (p[this.prefillHead]!.state !== PREFILL || p[this.prefillHead]!.prefillLeft === 0)) this.prefillHead++;
    if (this.prefillHead > 1024 && this.prefillHead * 2 > p.length) {
      p.splice(0, this.prefillHead);
      this.prefillHead = 0;
    }
  }

  /** Tokens the decoding sequences generated by the end of step `s`. */
  private generatedTokens(s: number): number {
    return this.decodingLive * (s + 1) - this.sumStartSteps;
  }

  private leave(seq: Sequence): void {
    if (seq.state === DECODE) {
      this.decodingLive--;
      this.sumStartSteps -= seq.startStep;
    }
    this.running--;
    this.ledger.release(seq);
  }

  private complete(seq: Sequence): void {
    this.leave(seq);
    seq.state = FINISHED;
    const job = seq.job;
    if (--job.remaining === 0 && !job.cancelled) job.onDone({ cachedTokens: job.cachedTokens, cacheWriteTokens: job.cacheWriteTokens });
  }
}
