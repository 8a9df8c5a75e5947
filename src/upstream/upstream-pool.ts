import { type AdaptiveLimitOptions } from './adaptive-limit.js';
import { HashRing, underBound } from './hash-ring.js';
import { type LoadSignalOptions } from './load-signal-limit.js';
import { type UpstreamOutcome } from './outcome.js';
import { PoolMember, type UpstreamStatus } from './pool-member.js';
import { parseServerMetrics } from './server-metrics.js';
import { UpstreamClient, type UpstreamRequest } from './upstream-client.js';

export type { ControllerKind, UpstreamMetricsStatus, UpstreamStatus } from './pool-member.js';

export interface PoolLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface UpstreamPoolOptions {
  /** One or more base URLs, e.g. http://gpu0:8000/v1. */
  baseUrls: readonly string[];
  apiKey: string | null;
  /** A number: requests in flight in total (the engine's MAX_WORKERS). 'auto': a limit per upstream found by measuring. */
  maxWorkers: number | 'auto';
  /** With 'auto', the most a single upstream may be given. */
  autoMaxPerUpstream?: number;
  /** The throughput hill-climb used where an upstream serves no load metrics. */
  autoOptions?: Partial<AdaptiveLimitOptions>;
  /** The controller used where it does (vLLM, SGLang). */
  loadSignalOptions?: Partial<LoadSignalOptions>;
  requestTimeoutMs: number;
  maxResponseBytes: number;
  /** Active /health probes; 0 = none. */
  healthIntervalMs: number;
  /** Consecutive connection failures or 5xx answers that take an upstream out of rotation. */
  ejectAfterFailures: number;
  /** How often GET /v1/models is asked again; 0 = only at start. */
  modelsRefreshMs: number;
  probeTimeoutMs?: number;
  /** How often GET <server root>/metrics is scraped with MAX_WORKERS=auto (default 500 ms; 0 = never, so 'auto' stays on the throughput hill-climb). */
  metricsIntervalMs?: number;
  /** Route requests with a `prefixKey` by consistent hashing with bounded load (default true). */
  prefixAffinity?: boolean;
  /** Bounded-load factor c: an upstream is skipped for a key while it would hold more than c × its share (default 1.25). */
  affinityLoadFactor?: number;
  /** BESH_UPSTREAM_HEADROOM: 0..0.9 of each server left free for other (interactive) clients (default 0). */
  headroom?: number;
  /** BESH_UPSTREAM_MAX_SLOWDOWN: with auto on a server exporting vLLM's inter-token latency, the most BESH may slow it down (a factor > 1; default 0 = no bound). */
  maxSlowdown?: number;
  /** Base URLs (as in `baseUrls`) whose requests carry their `priority` as a body field. */
  priorityUpstreams?: ReadonlySet<string>;
  log?: PoolLogger;
}

/** Answers the pool treats as "this server is failing" (passive health). */
const isServerFailure = (o: UpstreamOutcome): boolean =>
  (o.kind === 'network_error' && o.code === 'connection_error') || (o.kind === 'response' && o.status >= 500);

/** Answers that say "send me less" (adaptive concurrency). */
const isOverload = (o: UpstreamOutcome): boolean =>
  (o.kind === 'network_error' && o.code === 'request_timeout') || (o.kind === 'response' && (o.status === 429 || o.status === 503));

/** Requests remembered as "failed on upstream i" so their retry goes elsewhere; bounded. */
const MAX_REMEMBERED_FAILURES = 10_000;

const DEFAULT_METRICS_INTERVAL_MS = 500;
/** With a fixed MAX_WORKERS the scrapes only feed GET /health: every 10th interval. */
const FIXED_SCRAPE_EVERY = 10;
/** An upstream whose page had no load figures is asked again this much later (it may be restarted with them). */
const NO_METRICS_RETRY_MS = 30_000;
/** The pool counts as saturated (affinity must not idle a server) from this share of its capacity in flight. */
const SATURATED = 0.9;

/**
 * Several OpenAI-compatible servers behind one `send`, which like UpstreamClient's never throws.
 *
 * - Balancing: least outstanding requests, relative to each upstream's limit (ties rotate).
 * - Prefix affinity: a request with a `prefixKey` goes to the first upstream clockwise from the
 *   key on a consistent-hash ring that is eligible (healthy, serving the model, not where the
 *   previous attempt failed) and under the bounded-load cap (`underBound`); so requests sharing
 *   a system prompt meet that server's prefix cache, while no server takes more than c × its
 *   share. Throughput comes first: once the pool is nearly saturated, a server below its floor
 *   (with metrics: the requests that keep its batch full; else 1/c of its share) gets the next
 *   request whatever its key, because the engine's slots are a fixed total and a request queued
 *   at the key's server is one missing from another server's batch. When nothing qualifies, least
 *   outstanding decides.
 * - Health: active GET /health probes (server root) every `healthIntervalMs`, and passive
 *   ejection after `ejectAfterFailures` consecutive connection failures or 5xx; an ejected
 *   upstream gets no new requests until a probe passes. When no upstream is healthy, requests go
 *   to all of them anyway (the engine's retries and backoff then apply as with a single server).
 *   Without probes (`healthIntervalMs` 0) nothing could re-admit an upstream, so none is ejected.
 * - A request that failed on one upstream is sent, when retried, to another one if any is healthy.
 * - Models: GET /v1/models at start and every `modelsRefreshMs`; a request goes only to upstreams
 *   serving its model (or whose models are not known yet), read from `req.model` when the caller
 *   sets it, else parsed from the body — only while the upstreams' model lists differ.
 * - MAX_WORKERS=auto: each upstream has a controller (PoolMember): the LoadSignalLimit while its
 *   GET /metrics has vLLM/SGLang figures (scraped every `metricsIntervalMs`), else the
 *   AdaptiveLimit; `totalLimit` is the sum over healthy upstreams and `onCapacityChange` tells the
 *   engine when it moves.
 * - Headroom: see LoadSignalLimit (with metrics) and PoolMember (without).
 * - Priority: only upstreams in `priorityUpstreams` get a request's `priority` in its body.
 */
export class UpstreamPool {
  readonly #ups: PoolMember[];
  readonly #opts: UpstreamPoolOptions;
  readonly #lastFailed = new Map<string, PoolMember>();
  readonly #capacityListeners: Array<(n: number) => void> = [];
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #ring: HashRing | null;
  readonly #loadFactor: number;
  readonly #fixedTotal: number | null;
  #rotation = 0;
  #probing = false;
  #scrapes = 0;
  #lastTotal = -1;
  /** True when the upstreams' model lists differ, so requests must be routed by model. */
  #routeByModel = false;
  #closed = false;
  readonly #slowdownWarned = new Set<string>();

  constructor(opts: UpstreamPoolOptions) {
    if (opts.baseUrls.length === 0) throw new Error('UpstreamPool needs at least one base URL');
    const headroom = opts.headroom ?? 0;
    if (!(headroom >= 0 && headroom <= 0.9)) throw new Error('headroom must be between 0 and 0.9');
    const maxSlowdown = opts.maxSlowdown ?? 0;
    if (!(maxSlowdown === 0 || maxSlowdown > 1)) throw new Error('maxSlowdown must be 0 (off) or above 1');
    this.#opts = opts;
    const auto = opts.maxWorkers === 'auto';
    const maxWorkers = opts.maxWorkers === 'auto' ? (opts.autoMaxPerUpstream ?? 1024) : opts.maxWorkers;
    const priority = new Set([...(opts.priorityUpstreams ?? [])].map(normalizeUrl));
    this.#ups = opts.baseUrls.map((url) => {
      const client = new UpstreamClient({
        baseUrl: url,
        apiKey: opts.apiKey,
        connections: maxWorkers,
        requestTimeoutMs: opts.requestTimeoutMs,
        maxResponseBytes: opts.maxResponseBytes,
        forwardPriority: priority.has(normalizeUrl(url)),
      });
      return new PoolMember(url, client, { auto, maxWorkers, headroom, maxSlowdown, adaptive: opts.autoOptions, load: opts.loadSignalOptions });
    });
    this.#fixedTotal = auto ? null : this.#ups[0]!.limit;
    this.#ring = opts.prefixAffinity !== false && this.#ups.length > 1 ? new HashRing(opts.baseUrls) : null;
    this.#loadFactor = opts.affinityLoadFactor ?? 1.25;
    this.#lastTotal = this.totalLimit;
  }

  /**
   * Requests the engine may have in flight in total: MAX_WORKERS (× (1 − headroom)), or with
   * 'auto' the sum of the healthy upstreams' limits (of all of them when none is healthy).
   */
  get totalLimit(): number {
    if (this.#fixedTotal !== null) return this.#fixedTotal;
    const healthy = this.#ups.filter((u) => u.healthy);
    return (healthy.length > 0 ? healthy : this.#ups).reduce((n, u) => n + u.limit, 0);
  }

  /** `fn` is called with the new total whenever `totalLimit` changes. */
  onCapacityChange(fn: (n: number) => void): void {
    this.#capacityListeners.push(fn);
  }

  /** First health, model and metrics round (awaited, so the first batch is validated against known models and starts on the right controller), then the timers. */
  async start(): Promise<void> {
    const metricsMs = this.#opts.metricsIntervalMs ?? DEFAULT_METRICS_INTERVAL_MS;
    await Promise.all([this.checkHealth(), this.refreshModels(), metricsMs > 0 ? this.scrapeMetrics() : undefined]);
    const known = this.models();
    if (known === null) {
      this.#opts.log?.warn({ upstreams: this.#opts.baseUrls }, 'no upstream answered GET /v1/models: batches are not checked against served models');
    } else {
      this.#opts.log?.info({ models: [...known] }, 'upstream models discovered');
    }
    if (this.#opts.healthIntervalMs > 0) this.#every(this.#opts.healthIntervalMs, () => this.checkHealth());
    if (this.#opts.modelsRefreshMs > 0) this.#every(this.#opts.modelsRefreshMs, () => this.refreshModels());
    if (metricsMs > 0) this.#every(metricsMs, () => this.scrapeMetrics());
  }

  #every(ms: number, fn: () => Promise<void>): void {
    const t = setInterval(() => void fn(), ms);
    t.unref();
    this.#timers.push(t);
  }

  /** Union of the models the upstreams said they serve; null when none answered GET /v1/models. */
  models(): ReadonlySet<string> | null {
    let all: Set<string> | null = null;
    for (const u of this.#ups) {
      if (!u.models) continue;
      all ??= new Set();
      for (const m of u.models) all.add(m);
    }
    return all;
  }

  /** Whether some upstream serves `model`; true when no upstream answered GET /v1/models. */
  servesModel(model: string): boolean {
    const all = this.models();
    return all === null || all.has(model);
  }

  status(): UpstreamStatus[] {
    return this.#ups.map((u) => u.status());
  }

  /** One attempt on the best upstream for this request. Never throws. */
  async send(req: UpstreamRequest, signal: AbortSignal): Promise<UpstreamOutcome> {
    if (signal.aborted) return { kind: 'aborted' };
    const key = this.#lastFailed.size > 0 ? `${req.batchId}\n${req.customId}` : null;
    const avoid = key === null ? undefined : this.#lastFailed.get(key);
    if (avoid !== undefined) this.#lastFailed.delete(key!);
    const u = this.#pick(req, avoid);
    const inFlightAtStart = ++u.inFlight;
    if (inFlightAtStart > u.peakInFlight) u.peakInFlight = inFlightAtStart;
    const t0 = performance.now();
    let o: UpstreamOutcome;
    try {
      o = await u.client.send(req, signal);
    } finally {
      u.inFlight--;
    }
    if (o.kind === 'aborted') return o;
    const latency = performance.now() - t0;
    u.requests++;
    u.latencyEwma = u.latencyEwma === 0 ? latency : u.latencyEwma * 0.9 + latency * 0.1;
    if (isServerFailure(o) || o.kind === 'network_error') {
      u.errors++;
      if (this.#ups.length > 1) this.#rememberFailure(`${req.batchId}\n${req.customId}`, u);
    } else if (o.kind === 'response' && o.status >= 400) {
      u.errors++;
    }
    if (isServerFailure(o)) {
      if (++u.consecutiveFailures >= this.#opts.ejectAfterFailures && u.healthy && this.#opts.healthIntervalMs > 0) this.#setHealthy(u, false, 'consecutive failures');
    } else {
      u.consecutiveFailures = 0;
    }
    if (u.recordOutcome(latency, inFlightAtStart, isOverload(o))) this.#capacityMaybeChanged();
    return o;
  }

  #rememberFailure(key: string, u: PoolMember): void {
    if (this.#lastFailed.size >= MAX_REMEMBERED_FAILURES) {
      const oldest = this.#lastFailed.keys().next().value;
      if (oldest !== undefined) this.#lastFailed.delete(oldest);
    }
    this.#lastFailed.set(key, u);
  }

  /**
   * The request's prefix-affinity upstream if it has one that qualifies; else least outstanding
   * requests relative to the limit, among upstreams that are healthy and serve the model (falling
   * back to any that serves it, then to any). `avoid` (where the previous attempt failed) is
   * taken only when nothing else qualifies.
   */
  #pick(req: UpstreamRequest, avoid: PoolMember | undefined): PoolMember {
    const ups = this.#ups;
    const n = ups.length;
    if (n === 1) return ups[0]!;
    const model = this.#routeByModel ? (req.model ?? modelOf(req.body)) : undefined;
    if (this.#ring !== null && req.prefixKey !== undefined) {
      const u = this.#pickByPrefix(this.#ring, req.prefixKey, model, avoid);
      if (u !== undefined) return u;
    }
    const start = this.#rotation++ % n;
    let best: PoolMember | undefined;
    let bestScore = Infinity;
    // Pass 0: healthy, serving, not avoided. 1: healthy, serving. 2: serving. 3: anything.
    for (let pass = 0; pass < 4 && best === undefined; pass++) {
      for (let k = 0; k < n; k++) {
        const u = ups[(start + k) % n]!;
        if (pass <= 1 && !u.healthy) continue;
        if (pass === 0 && u === avoid) continue;
        if (pass <= 2 && !serves(u, model)) continue;
        const score = u.inFlight / u.limit;
        if (score < bestScore) {
          bestScore = score;
          best = u;
        }
      }
    }
    return best!;
  }

  /** Consistent hashing with bounded load among the healthy upstreams serving `model`; undefined: none qualifies. */
  #pickByPrefix(ring: HashRing, key: string, model: string | undefined, avoid: PoolMember | undefined): PoolMember | undefined {
    const ups = this.#ups;
    const c = this.#loadFactor;
    let total = 0;
    let totalLimit = 0;
    for (const u of ups) {
      if (!u.healthy || u === avoid || !serves(u, model)) continue;
      total += u.inFlight;
      totalLimit += u.limit;
    }
    if (totalLimit === 0) return undefined;
    if (total + 1 >= SATURATED * (this.#fixedTotal ?? totalLimit)) {
      for (const u of ups) {
        if (!u.healthy || u === avoid || !serves(u, model)) continue;
        const floor = u.floor ?? ((total + 1) * u.limit) / (totalLimit * c);
        if (u.inFlight < floor) return undefined;
      }
    }
    for (let i = ring.first(key); i >= 0; i = ring.next()) {
      const u = ups[i]!;
      if (!u.healthy || u === avoid || !serves(u, model)) continue;
      if (underBound(u.inFlight, u.limit, total, totalLimit, c)) return u;
    }
    return undefined;
  }

  /** Active health check of every upstream (GET <server root>/health, 2xx = pass). */
  async checkHealth(): Promise<void> {
    if (this.#probing || this.#closed) return;
    this.#probing = true;
    try {
      await Promise.all(
        this.#ups.map(async (u) => {
          const r = await u.client.get(`${u.client.rootPath}/health`, this.#opts.probeTimeoutMs ?? 2000);
          const ok = r !== null && r.status >= 200 && r.status < 300;
          if (ok) {
            u.probeFailures = 0;
            if (!u.healthy) {
              u.consecutiveFailures = 0;
              this.#setHealthy(u, true, 'health probe passed');
            }
          } else if (++u.probeFailures >= 2 && u.healthy) {
            this.#setHealthy(u, false, 'health probe failed twice');
          }
        }),
      );
    } finally {
      this.#probing = false;
    }
  }

  /**
   * One round of GET <server root>/metrics (the root of the health probe). With 'auto' every
   * interval for upstreams that serve load figures; a fixed MAX_WORKERS only shows them, so it
   * scrapes every 10th interval; a page without figures is asked again after 30 s (once an
   * upstream on the load signal has fallen back to the AdaptiveLimit).
   */
  async scrapeMetrics(): Promise<void> {
    if (this.#closed) return;
    const intervalMs = this.#opts.metricsIntervalMs ?? DEFAULT_METRICS_INTERVAL_MS;
    const fixed = this.#fixedTotal !== null;
    const now = performance.now();
    this.#scrapes++;
    let changed = false;
    await Promise.all(
      this.#ups.map(async (u) => {
        if (u.nextScrapeAt > now || (fixed && u.servesMetrics && this.#scrapes % FIXED_SCRAPE_EVERY !== 1)) return;
        // Marks the scrape as under way, so a slow server is not asked twice at once.
        u.nextScrapeAt = Infinity;
        const at = u.scrapeStarted();
        const r = await u.client.get(`${u.client.rootPath}/metrics`, Math.max(intervalMs, this.#opts.probeTimeoutMs ?? 2000), 'text/plain');
        if (this.#closed) return;
        const sample = r !== null && r.status >= 200 && r.status < 300 ? parseServerMetrics(r.body) : null;
        // Unreachable: the health checks deal with it; the controller waits for figures.
        if (r !== null && u.absorbMetrics(sample, at)) changed = true;
        if (sample !== null && sample.itlTokens === undefined) this.#warnNoLatencyHistogram(u.url);
        // Until an upstream on the load signal has fallen back, a page without figures may be a blip.
        u.nextScrapeAt = r !== null && sample === null && u.controller !== 'metrics' ? performance.now() + NO_METRICS_RETRY_MS : 0;
      }),
    );
    if (changed) this.#capacityMaybeChanged();
  }

  /** Once per upstream: BESH_UPSTREAM_MAX_SLOWDOWN is set, but this server's metrics cannot honour it. */
  #warnNoLatencyHistogram(url: string): void {
    if (!((this.#opts.maxSlowdown ?? 0) > 0) || this.#opts.maxWorkers !== 'auto' || this.#slowdownWarned.has(url)) return;
    this.#slowdownWarned.add(url);
    this.#opts.log?.warn(
      { upstream: url },
      'BESH_UPSTREAM_MAX_SLOWDOWN has no effect on this upstream: its /metrics has no vllm:inter_token_latency_seconds (or vllm:time_per_output_token_seconds) histogram',
    );
  }

  /** GET /v1/models on every upstream; an upstream that does not answer keeps what it had. */
  async refreshModels(): Promise<void> {
    if (this.#closed) return;
    await Promise.all(
      this.#ups.map(async (u) => {
        const r = await u.client.get(u.client.pathFor('/v1/models'), this.#opts.probeTimeoutMs ?? 2000);
        if (r === null || r.status < 200 || r.status >= 300) return;
        const ids = parseModelList(r.body);
        if (ids) u.models = ids;
      }),
    );
    const lists = this.#ups.map((u) => (u.models ? [...u.models].sort().join('\n') : null));
    this.#routeByModel = lists.some((l) => l !== null) && new Set(lists).size > 1;
  }

  #setHealthy(u: PoolMember, healthy: boolean, reason: string): void {
    u.healthy = healthy;
    if (healthy) this.#opts.log?.info({ upstream: u.url, reason }, 'upstream back in rotation');
    else this.#opts.log?.warn({ upstream: u.url, reason }, 'upstream taken out of rotation');
    this.#capacityMaybeChanged();
  }

  #capacityMaybeChanged(): void {
    const total = this.totalLimit;
    if (total === this.#lastTotal) return;
    this.#lastTotal = total;
    for (const fn of this.#capacityListeners) fn(total);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    await Promise.all(this.#ups.map((u) => u.client.close()));
  }
}

const serves = (u: PoolMember, model: string | undefined): boolean => model === undefined || u.models === null || u.models.has(model);

const normalizeUrl = (url: string): string => url.replace(/\/+$/, '');

/** The ids of an OpenAI `GET /v1/models` answer, or null when it is not one. */
export function parseModelList(body: string): Set<string> | null {
  try {
    const o = JSON.parse(body) as { data?: unknown };
    if (!Array.isArray(o.data)) return null;
    const ids = new Set<string>();
    for (const m of o.data as unknown[]) {
      const id = (m as { id?: unknown } | null)?.id;
      if (typeof id === 'string') ids.add(id);
    }
    return ids;
  } catch {
    return null;
  }
}

function modelOf(body: string): string | undefined {
  try {
    const m = (JSON.parse(body) as { model?: unknown }).model;
    return typeof m === 'string' ? m : undefined;
  } catch {
    return undefined;
  }
}
