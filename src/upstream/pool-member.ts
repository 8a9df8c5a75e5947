import { AdaptiveLimit, type AdaptiveLimitOptions } from './adaptive-limit.js';
import { HitRateMeter } from './hit-rate.js';
import { defaultLoadSignalOptions, LoadSignalLimit, type LoadSignalOptions } from './load-signal-limit.js';
import type { MetricsSample } from './server-metrics.js';
import type { UpstreamClient } from './upstream-client.js';

/** How an upstream's limit is set: MAX_WORKERS, measured throughput, or the server's own load figures. */
export type ControllerKind = 'fixed' | 'adaptive' | 'metrics';

/** What GET /health shows of an upstream's last metrics scrape. */
export interface UpstreamMetricsStatus {
  running: number;
  waiting: number;
  /** 0..1; null when the server does not export it. */
  kv_cache_usage: number | null;
  /** 0..1 over the last ~10 scrapes; null when unknown. */
  prefix_cache_hit_rate: number | null;
}

/** What GET /health shows of one upstream. */
export interface UpstreamStatus {
  url: string;
  healthy: boolean;
  in_flight: number;
  /** Requests it may have in flight (its controller's limit, or MAX_WORKERS), after headroom. */
  limit: number;
  controller: ControllerKind;
  /** Average of recent answers (EWMA), ms. */
  latency_ms: number;
  requests: number;
  errors: number;
  consecutive_failures: number;
  /** Models from GET /v1/models; null until that answered. */
  models: string[] | null;
  /** The last scrape of its GET /metrics; null when it serves none (or none answered yet). */
  metrics: UpstreamMetricsStatus | null;
}

export interface MemberOptions {
  /** MAX_WORKERS=auto. */
  auto: boolean;
  /** MAX_WORKERS, or with auto the most one upstream may be given. */
  maxWorkers: number;
  /** 0..0.9: the share of the server left to other clients. */
  headroom: number;
  /** > 1: the most BESH may slow the server's inter-token latency (metrics controller only); 0 = no bound. */
  maxSlowdown?: number;
  adaptive?: Partial<AdaptiveLimitOptions>;
  load?: Partial<LoadSignalOptions>;
}

/**
 * Headroom on the AdaptiveLimit: the knee must be found at full concurrency (a scaled-down limit
 * would never reach it and read as "no demand"), so while it climbs BESH uses all of it; once it
 * holds, BESH keeps (1 − h) of it. Its windows below the full limit then count as unsaturated,
 * so a held limit stays put until an overload starts a new climb.
 */
export function adaptiveWithHeadroom(limit: number, phase: AdaptiveLimit['phase'], headroom: number): number {
  const discovering = phase === 'slow_start' || phase === 'climb';
  return headroom > 0 && !discovering ? Math.max(1, Math.floor(limit * (1 - headroom))) : limit;
}

/** Scrapes in a row without metrics that send an upstream back from 'metrics' to 'adaptive'. */
const METRICS_MISSES_TO_FALL_BACK = 3;

/**
 * One inference server and what the pool knows of it, including which controller sets its limit.
 * With auto it starts on today's AdaptiveLimit and moves to the LoadSignalLimit on the first
 * scrape that has vLLM or SGLang figures, and back after a few scrapes without (a server
 * restarted without metrics); each switch starts the new controller at the current limit.
 */
export class PoolMember {
  inFlight = 0;
  /** The most in flight since the last scrape was sent (whether the limit was reached). */
  peakInFlight = 0;
  healthy = true;
  consecutiveFailures = 0;
  probeFailures = 0;
  requests = 0;
  errors = 0;
  latencyEwma = 0;
  models: Set<string> | null = null;
  /** Whether the last answer to GET /metrics had load figures (decides how often it is asked). */
  servesMetrics = false;
  nextScrapeAt = 0;
  readonly #o: MemberOptions;
  readonly #fixedLimit: number;
  #adaptive: AdaptiveLimit | null;
  #load: LoadSignalLimit | null = null;
  #sample: MetricsSample | null = null;
  #misses = 0;
  readonly #hitRate = new HitRateMeter();

  constructor(
    readonly url: string,
    readonly client: UpstreamClient,
    opts: MemberOptions,
  ) {
    this.#o = opts;
    // Without a load signal, headroom scales the limit: MAX_WORKERS × (1 − h).
    this.#fixedLimit = Math.max(1, Math.floor(opts.maxWorkers * (1 - opts.headroom)));
    this.#adaptive = opts.auto ? this.#newAdaptive(undefined) : null;
  }

  get controller(): ControllerKind {
    return this.#load ? 'metrics' : this.#adaptive ? 'adaptive' : 'fixed';
  }

  get limit(): number {
    if (this.#load) return this.#load.limit;
    if (this.#adaptive) return adaptiveWithHeadroom(this.#adaptive.limit, this.#adaptive.phase, this.#o.headroom);
    return this.#fixedLimit;
  }

  /** With the load signal: requests that keep its batch full (the rest of the limit is queue); else null. */
  get floor(): number | null {
    return this.#load ? this.#load.floor : null;
  }

  /** One attempt ended (not aborted). Returns true when the limit changed. */
  recordOutcome(latencyMs: number, inFlightAtStart: number, overload: boolean): boolean {
    if (this.#load) {
      if (overload) this.#load.overload();
      return false;
    }
    return this.#adaptive !== null && this.#adaptive.record(latencyMs, inFlightAtStart, overload);
  }

  /**
   * A scrape is sent: what BESH had there then is what the page can show (requests sent while it
   * is under way cannot be in it). Returns the outstanding count and the peak since the last one.
   */
  scrapeStarted(): { outstanding: number; peak: number } {
    const r = { outstanding: this.inFlight, peak: this.peakInFlight };
    this.peakInFlight = this.inFlight;
    return r;
  }

  /**
   * A scrape answered: its load figures, or null when the page had none, with `scrapeStarted`'s
   * figures. Returns true when the limit changed.
   */
  absorbMetrics(sample: MetricsSample | null, at: { outstanding: number; peak: number } = this.scrapeStarted()): boolean {
    const before = this.limit;
    this.servesMetrics = sample !== null;
    if (sample === null) {
      if (++this.#misses >= METRICS_MISSES_TO_FALL_BACK) {
        this.#sample = null;
        if (this.#load) {
          this.#adaptive = this.#newAdaptive(this.#load.limit);
          this.#load = null;
        }
      }
      return this.limit !== before;
    }
    this.#misses = 0;
    this.#sample = sample;
    this.#hitRate.add(sample);
    if (!this.#o.auto) return false;
    if (!this.#load) {
      const initial = Math.max(this.limit, this.#o.load?.initial ?? defaultLoadSignalOptions.initial);
      this.#load = new LoadSignalLimit({ max: this.#o.maxWorkers, ...this.#o.load, headroom: this.#o.headroom, maxSlowdown: this.#o.maxSlowdown ?? 0, initial });
      this.#adaptive = null;
    }
    this.#load.update(sample, at.outstanding, at.peak, this.requests);
    return this.limit !== before;
  }

  status(): UpstreamStatus {
    const s = this.#sample;
    return {
      url: this.url,
      healthy: this.healthy,
      in_flight: this.inFlight,
      limit: this.limit,
      controller: this.controller,
      latency_ms: Math.round(this.latencyEwma * 10) / 10,
      requests: this.requests,
      errors: this.errors,
      consecutive_failures: this.consecutiveFailures,
      models: this.models ? [...this.models] : null,
      metrics: s && {
        running: s.running,
        waiting: s.waiting,
        kv_cache_usage: s.kvUsage,
        prefix_cache_hit_rate: this.#hitRate.rate,
      },
    };
  }

  #newAdaptive(initial: number | undefined): AdaptiveLimit {
    return new AdaptiveLimit({ max: this.#o.maxWorkers, ...this.#o.adaptive, ...(initial === undefined ? {} : { initial }) });
  }
}
