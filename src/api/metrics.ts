import { timingSafeEqual } from 'node:crypto';

import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import { AuthenticationError, BATCH_STATUSES } from '../domain/index.js';
import type { AppDeps } from './app-deps.js';
import { clusterTotals } from './cluster-view.js';
import { storageStatus } from './status-routes.js';

/** Seconds; from a fast local model to a long generation. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export interface Metrics {
  readonly registry: Registry;
  /** Bytes of an accepted upload. */
  uploaded(bytes: number): void;
  /** An expired file was swept. */
  fileExpired(purpose: string): void;
}

/** The upstream label: the base URL without credentials (never `user:pass@`). */
export function upstreamLabel(base: string): string {
  try {
    const u = new URL(base);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/+$/, '');
  } catch {
    return 'invalid';
  }
}

/**
 * Prometheus metrics, built as a subscriber of the engine's events (the engine knows nothing of
 * them) plus gauges read from the engine and the store at scrape time. One registry per app, so
 * several apps in one process (tests) do not collide.
 */
export function createMetrics(deps: AppDeps): Metrics {
  const { engine, store, config } = deps;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  // Engine events do not say which upstream served a request: with several upstreams, the
  // event-based series carry upstream="all"; per-upstream figures come from the pool's status.
  const upstream = config.upstreamBases.length === 1 ? upstreamLabel(config.upstreamBases[0]!) : 'all';
  const poolStatus = (): Array<{ label: string; s: ReturnType<AppDeps['upstream']['status']>[number] }> =>
    deps.upstream.status().map((s) => ({ label: upstreamLabel(s.url), s }));

  const requests = new Counter({
    name: 'besh_upstream_requests_total',
    help: 'Batch requests finished, by outcome (success = 2xx result in the output file, failure = line in the error file) and final HTTP status (none = no HTTP answer).',
    labelNames: ['upstream', 'outcome', 'status_code'] as const,
    registers,
  });
  const retries = new Counter({
    name: 'besh_upstream_retries_total',
    help: 'Attempts that failed in a retryable way and were retried, by HTTP status (none = connection error or timeout).',
    labelNames: ['upstream', 'status_code'] as const,
    registers,
  });
  const latency = new Histogram({
    name: 'besh_upstream_request_duration_seconds',
    help: 'Time from sending a batch request upstream to its final result, retries and backoff included.',
    labelNames: ['upstream', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  new Gauge({
    name: 'besh_upstream_in_flight',
    help: 'Requests in flight, by upstream base URL.',
    labelNames: ['upstream'] as const,
    registers,
    collect() {
      for (const { label, s } of poolStatus()) this.set({ upstream: label }, s.in_flight);
    },
  });
  new Gauge({
    name: 'besh_upstream_healthy',
    help: '1 when the upstream passes its health checks, else 0.',
    labelNames: ['upstream'] as const,
    registers,
    collect() {
      for (const { label, s } of poolStatus()) this.set({ upstream: label }, s.healthy ? 1 : 0);
    },
  });
  new Gauge({
    name: 'besh_upstream_limit',
    help: 'Requests BESH sends at once to the upstream (fixed, or adaptive with MAX_WORKERS=auto).',
    labelNames: ['upstream'] as const,
    registers,
    collect() {
      for (const { label, s } of poolStatus()) this.set({ upstream: label }, s.limit);
    },
  });
  new Gauge({
    name: 'besh_upstream_latency_ewma_seconds',
    help: 'Moving average of one attempt, by upstream base URL.',
    labelNames: ['upstream'] as const,
    registers,
    collect() {
      for (const { label, s } of poolStatus()) this.set({ upstream: label }, s.latency_ms / 1000);
    },
  });
  // The pool counts attempts; exported as counters that advance by the difference at each scrape.
  const attemptsSeen = new Map<string, { requests: number; errors: number }>();
  const attempts = new Counter({
    name: 'besh_upstream_attempts_total',
    help: 'Attempts sent to each upstream (retries included), by result (error = HTTP >= 400 or no answer).',
    labelNames: ['upstream', 'result'] as const,
    registers,
    collect() {
      for (const { label, s } of poolStatus()) {
        const seen = attemptsSeen.get(label) ?? { requests: 0, errors: 0 };
        const errors = Math.max(0, s.errors - seen.errors);
        const all = Math.max(0, s.requests - seen.requests);
        attempts.inc({ upstream: label, result: 'ok' }, Math.max(0, all - errors));
        attempts.inc({ upstream: label, result: 'error' }, errors);
        attemptsSeen.set(label, { requests: s.requests, errors: s.errors });
      }
    },
  });
  new Gauge({
    name: 'besh_in_flight',
    help: 'Worker slots in use on this replica (requests in flight, all upstreams).',
    registers,
    collect() {
      this.set(engine.snapshot().inFlight);
    },
  });
  new Gauge({
    name: 'besh_worker_limit',
    help: 'Worker slots of this replica (MAX_WORKERS, or the sum of the upstream limits with auto).',
    registers,
    collect() {
      this.set(engine.snapshot().workerLimit);
    },
  });
  // The cluster, as this replica sees it in the store (the same on every replica: aggregate with max, not sum).
  new Gauge({
    name: 'besh_cluster_replicas',
    help: 'Replicas alive (heartbeat within the lease TTL), this one included.',
    registers,
    async collect() {
      this.set((await clusterTotals(deps)).replicas);
    },
  });
  new Gauge({
    name: 'besh_cluster_in_flight',
    help: 'Requests in flight on every replica (the others as of their last heartbeat).',
    registers,
    async collect() {
      this.set((await clusterTotals(deps)).inFlight);
    },
  });
  new Gauge({
    name: 'besh_cluster_worker_limit',
    help: 'Worker slots of every live replica (the upstreams see up to this many requests at once).',
    registers,
    async collect() {
      this.set((await clusterTotals(deps)).workerLimit);
    },
  });
  const tokens = new Counter({
    name: 'besh_tokens_total',
    help: 'Tokens reported by the inference server for successful requests, by direction (input = prompt, output = completion).',
    labelNames: ['direction'] as const,
    registers,
  });
  new Gauge({
    name: 'besh_batches',
    help: 'Batches in the store, by status.',
    labelNames: ['status'] as const,
    registers,
    async collect() {
      const counts = await store.countBatchesByStatus();
      for (const status of BATCH_STATUSES) this.set({ status }, counts[status] ?? 0);
    },
  });
  new Gauge({
    name: 'besh_queue_depth',
    help: 'Batches waiting for a replica to take them (every replica at MAX_CONCURRENT_BATCHES).',
    registers,
    async collect() {
      this.set((await clusterTotals(deps)).queued.length);
    },
  });
  new Gauge({
    name: 'besh_active_batches',
    help: 'Batches this replica validates or runs shards of.',
    registers,
    collect() {
      this.set(engine.snapshot().activeBatches);
    },
  });
  new Gauge({
    name: 'besh_stored_bytes',
    help: 'Bytes of stored files, by purpose (batch = uploads, batch_output = output and error files).',
    labelNames: ['purpose'] as const,
    registers,
    async collect() {
      const s = await storageStatus(deps);
      for (const [purpose, bytes] of Object.entries(s.bytes_by_purpose)) this.set({ purpose }, bytes);
    },
  });
  new Gauge({
    name: 'besh_disk_free_bytes',
    help: 'Free space where blobs are stored (absent with S3, which has no such bound).',
    registers,
    async collect() {
      const free = await deps.blobs.freeBytes();
      if (free === null) this.reset();
      else this.set(free);
    },
  });
  // Per project (a team's share, for chargeback and alerts). Projects are made by operators
  // (`besh keys create`), so the label's values stay few.
  const projectRequests = new Counter({
    name: 'besh_project_requests_total',
    help: 'Batch requests finished, by project and outcome (success = output file, failure = error file).',
    labelNames: ['project', 'outcome'] as const,
    registers,
  });
  const projectTokens = new Counter({
    name: 'besh_project_tokens_total',
    help: 'Tokens of successful requests, by project and direction.',
    labelNames: ['project', 'direction'] as const,
    registers,
  });
  new Gauge({
    name: 'besh_project_in_flight',
    help: 'Worker slots in use on this replica, by project (fair share between projects).',
    labelNames: ['project'] as const,
    registers,
    async collect() {
      this.reset();
      for (const project of await store.listProjects()) this.set({ project }, engine.snapshot(project).project?.inFlight ?? 0);
    },
  });
  new Gauge({
    name: 'besh_project_stored_bytes',
    help: 'Bytes of stored files (uploads, outputs and errors), by project.',
    labelNames: ['project'] as const,
    registers,
    async collect() {
      this.reset();
      for (const [project, bytes] of Object.entries(await store.storedBytesByProject())) this.set({ project }, bytes);
    },
  });
  const uploadBytes = new Counter({ name: 'besh_upload_bytes_total', help: 'Bytes of accepted uploads (after gzip decoding).', registers });
  const uploads = new Counter({ name: 'besh_uploads_total', help: 'Accepted uploads.', registers });
  const expiredFiles = new Counter({
    name: 'besh_files_expired_total',
    help: 'Files deleted by the sweeper after their expires_at, by purpose.',
    labelNames: ['purpose'] as const,
    registers,
  });

  engine.events.on('request:done', (d) => {
    const outcome = d.ok ? 'success' : 'failure';
    requests.inc({ upstream, outcome, status_code: d.status === null ? 'none' : String(d.status) });
    latency.observe({ upstream, outcome }, d.latencyMs / 1000);
    projectRequests.inc({ project: d.project, outcome });
    if (d.usage) {
      tokens.inc({ direction: 'input' }, d.usage.inputTokens);
      tokens.inc({ direction: 'output' }, d.usage.outputTokens);
      projectTokens.inc({ project: d.project, direction: 'input' }, d.usage.inputTokens);
      projectTokens.inc({ project: d.project, direction: 'output' }, d.usage.outputTokens);
    }
  });
  engine.events.on('request:retry', (r) => {
    retries.inc({ upstream, status_code: r.status === null ? 'none' : String(r.status) });
  });

  return {
    registry,
    uploaded(bytes) {
      uploads.inc();
      uploadBytes.inc(bytes);
    },
    fileExpired(purpose) {
      expiredFiles.inc({ purpose });
    },
  };
}

/** `GET /metrics` in Prometheus text format; behind `Authorization: Bearer BESH_METRICS_TOKEN` when set. */
export function metricsRoutes(app: FastifyInstance, deps: AppDeps, metrics: Metrics): void {
  const token = deps.config.metricsToken;
  app.get('/metrics', async (req, reply) => {
    if (token !== null && !bearerMatches(req.headers.authorization, token)) {
      void reply.header('www-authenticate', 'Bearer realm="besh-metrics"');
      throw new AuthenticationError('A valid metrics token is required: send Authorization: Bearer <BESH_METRICS_TOKEN>.', { code: 'invalid_metrics_token' });
    }
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1]!.trim());
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
