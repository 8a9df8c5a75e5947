import { AdaptiveLimit, type AdaptiveLimitOptions } from './adaptive-limit.js';
import { type UpstreamOutcome } from './outcome.js';
import { UpstreamClient, type UpstreamRequest } from './upstream-client.js';

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
  autoOptions?: Partial<AdaptiveLimitOptions>;
  requestTimeoutMs: number;
  maxResponseBytes: number;
  /** Active /health probes; 0 = none. */
  healthIntervalMs: number;
  /** Consecutive connection failures or 5xx answers that take an upstream out of rotation. */
  ejectAfterFailures: number;
  /** How often GET /v1/models is asked again; 0 = only at start. */
  modelsRefreshMs: number;
  probeTimeoutMs?: number;
  log?: PoolLogger;
}

/** What GET /health shows of one upstream. */
export interface UpstreamStatus {
  url: string;
  healthy: boolean;
  in_flight: number;
  /** Requests it may have in flight (its adaptive limit, or MAX_WORKERS). */
  limit: number;
  /** Average of recent answers (EWMA), ms. */
  latency_ms: number;
  requests: number;
  errors: number;
  consecutive_failures: number;
  /** Models from GET /v1/models; null until that answered. */
  models: string[] | null;
}

/** One inference server and what the pool knows of it. */
class Upstream {
  readonly client: UpstreamClient;
  inFlight = 0;
  healthy = true;
  consecutiveFailures = 0;
  probeFailures = 0;
  requests = 0;
  errors = 0;
  latencyEwma = 0;
  models: Set<string> | null = null;
  readonly adaptive: AdaptiveLimit | null;

  constructor(readonly url: string, client: UpstreamClient, adaptive: AdaptiveLimit | null, readonly fixedLimit: number) {
    this.client = client;
    this.adaptive = adaptive;
  }

  get limit(): number {
    return this.adaptive ? this.adaptive.limit : this.fixedLimit;
  }
}

/** Answers the pool treats as "this server is failing" (passive health). */
const isServerFailure = (o: UpstreamOutcome): boolean =>
  (o.kind === 'network_error' && o.code === 'connection_error') || (o.kind === 'response' && o.status >= 500);

/** Answers that say "send me less" (adaptive concurrency). */
const isOverload = (o: UpstreamOutcome): boolean =>
  (o.kind === 'network_error' && o.code === 'request_timeout') || (o.kind === 'response' && (o.status === 429 || o.status === 503));

/** Requests remembered as "failed on upstream i" so their retry goes elsewhere; bounded. */
const MAX_REMEMBERED_FAILURES = 10_000;

/**
 * Several OpenAI-compatible servers behind one `send`, which like UpstreamClient's never throws.
 *
 * - Balancing: least outstanding requests, relative to each upstream's limit (ties rotate).
 * - Health: active GET /health probes (server root) every `healthIntervalMs`, and passive
 *   ejection after `ejectAfterFailures` consecutive connection failures or 5xx; an ejected
 *   upstream gets no new requests until a probe passes. When no upstream is healthy, requests go
 *   to all of them anyway (the engine's retries and backoff then apply as with a single server).
 *   Without probes (`healthIntervalMs` 0) nothing could re-admit an upstream, so none is ejected.
 * - A request that failed on one upstream is sent, when retried, to another one if any is healthy.
 * - Models: GET /v1/models at start and every `modelsRefreshMs`; a request goes only to upstreams
 *   serving its model (or whose models are not known yet).
 * - MAX_WORKERS=auto: each upstream has an AdaptiveLimit; `totalLimit` is the sum over healthy
 *   upstreams and `onCapacityChange` tells the engine when it moves.
 */
export class UpstreamPool {
  readonly #ups: Upstream[];
  readonly #opts: UpstreamPoolOptions;
  readonly #lastFailed = new Map<string, Upstream>();
  readonly #capacityListeners: Array<(n: number) => void> = [];
  readonly #timers: NodeJS.Timeout[] = [];
  #rotation = 0;
  #probing = false;
  #lastTotal = -1;
  /** True when the upstreams' model lists differ, so requests must be routed by model. */
  #routeByModel = false;
  #closed = false;

  constructor(opts: UpstreamPoolOptions) {
    if (opts.baseUrls.length === 0) throw new Error('UpstreamPool needs at least one base URL');
    this.#opts = opts;
    const auto = opts.maxWorkers === 'auto';
    const perUpstreamMax = opts.autoMaxPerUpstream ?? 1024;
    this.#ups = opts.baseUrls.map((url) => {
      const fixed = auto ? perUpstreamMax : (opts.maxWorkers as number);
      const client = new UpstreamClient({
        baseUrl: url,
        apiKey: opts.apiKey,
        connections: fixed,
        requestTimeoutMs: opts.requestTimeoutMs,
        maxResponseBytes: opts.maxResponseBytes,
      });
      const adaptive = auto ? new AdaptiveLimit({ max: perUpstreamMax, ...opts.autoOptions }) : null;
      return new Upstream(url, client, adaptive, fixed);
    });
    this.#lastTotal = this.totalLimit;
  }

  get size(): number {
    return this.#ups.length;
  }

  get adaptive(): boolean {
    return this.#opts.maxWorkers === 'auto';
  }

  /**
   * Requests the engine may have in flight in total: MAX_WORKERS, or with 'auto' the sum of the
   * healthy upstreams' limits (of all of them when none is healthy).
   */
  get totalLimit(): number {
    if (this.#opts.maxWorkers !== 'auto') return this.#opts.maxWorkers;
    const healthy = this.#ups.filter((u) => u.healthy);
    return (healthy.length > 0 ? healthy : this.#ups).reduce((n, u) => n + u.limit, 0);
  }

  /** `fn` is called with the new total whenever `totalLimit` changes. */
  onCapacityChange(fn: (n: number) => void): void {
    this.#capacityListeners.push(fn);
  }

  /** First health and model round (awaited, so the first batch is validated against known models), then the timers. */
  async start(): Promise<void> {
    await Promise.all([this.checkHealth(), this.refreshModels()]);
    const known = this.models();
    if (known === null) {
      this.#opts.log?.warn({ upstreams: this.#opts.baseUrls }, 'no upstream answered GET /v1/models: batches are not checked against served models');
    } else {
      this.#opts.log?.info({ models: [...known] }, 'upstream models discovered');
    }
    if (this.#opts.healthIntervalMs > 0) this.#every(this.#opts.healthIntervalMs, () => this.checkHealth());
    if (this.#opts.modelsRefreshMs > 0) this.#every(this.#opts.modelsRefreshMs, () => this.refreshModels());
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

  /** Maps a line url onto the first upstream's base path (all upstreams are expected to share it). */
  pathFor(lineUrl: string): string {
    return this.#ups[0]!.client.pathFor(lineUrl);
  }

  /** GET `path` on every upstream; true when at least one answers below 500. */
  async probe(path: string, timeoutMs = 2000): Promise<boolean> {
    const results = await Promise.all(this.#ups.map((u) => u.client.probe(path, timeoutMs)));
    return results.some(Boolean);
  }

  status(): UpstreamStatus[] {
    return this.#ups.map((u) => ({
      url: u.url,
      healthy: u.healthy,
      in_flight: u.inFlight,
      limit: u.limit,
      latency_ms: Math.round(u.latencyEwma * 10) / 10,
      requests: u.requests,
      errors: u.errors,
      consecutive_failures: u.consecutiveFailures,
      models: u.models ? [...u.models] : null,
    }));
  }

  /** One attempt on the best upstream for this request. Never throws. */
  async send(req: UpstreamRequest, signal: AbortSignal): Promise<UpstreamOutcome> {
    if (signal.aborted) return { kind: 'aborted' };
    const key = this.#lastFailed.size > 0 ? `${req.batchId}\n${req.customId}` : null;
    const avoid = key === null ? undefined : this.#lastFailed.get(key);
    if (avoid !== undefined) this.#lastFailed.delete(key!);
    const u = this.#pick(req, avoid);
    const inFlightAtStart = ++u.inFlight;
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
    if (u.adaptive && u.adaptive.record(latency, inFlightAtStart, isOverload(o))) this.#capacityMaybeChanged();
    return o;
  }

  #rememberFailure(key: string, u: Upstream): void {
    if (this.#lastFailed.size >= MAX_REMEMBERED_FAILURES) {
      const oldest = this.#lastFailed.keys().next().value;
      if (oldest !== undefined) this.#lastFailed.delete(oldest);
    }
    this.#lastFailed.set(key, u);
  }

  /**
   * Least outstanding requests relative to the limit, among upstreams that are healthy and serve
   * the model (falling back to any that serves it, then to any). `avoid` (where the previous
   * attempt failed) is taken only when nothing else qualifies.
   */
  #pick(req: UpstreamRequest, avoid: Upstream | undefined): Upstream {
    const ups = this.#ups;
    const n = ups.length;
    if (n === 1) return ups[0]!;
    const model = this.#routeByModel ? (req.model ?? modelOf(req.body)) : undefined;
    const start = this.#rotation++ % n;
    let best: Upstream | undefined;
    let bestScore = Infinity;
    // Pass 0: healthy, serving, not avoided. 1: healthy, serving. 2: serving. 3: anything.
    for (let pass = 0; pass < 4 && best === undefined; pass++) {
      for (let k = 0; k < n; k++) {
        const u = ups[(start + k) % n]!;
        if (pass <= 1 && !u.healthy) continue;
        if (pass === 0 && u === avoid) continue;
        if (pass <= 2 && model !== undefined && u.models !== null && !u.models.has(model)) continue;
        const score = u.inFlight / u.limit;
        if (score < bestScore) {
          bestScore = score;
          best = u;
        }
      }
    }
    return best!;
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

  #setHealthy(u: Upstream, healthy: boolean, reason: string): void {
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
