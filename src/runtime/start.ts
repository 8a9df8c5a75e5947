import type { FastifyInstance } from 'fastify';
import type { Logger as PinoLogger } from 'pino';

import { buildApp } from '../api/app.js';
import type { AppDeps } from '../api/app-deps.js';
import { KeyAuthority } from '../api/auth.js';
import { closeHttp, trackInFlight } from '../api/http-lifecycle.js';
import { createMetrics, upstreamLabel } from '../api/metrics.js';
import { type Config, CORE_ENDPOINTS } from '../config.js';
import { Engine } from '../engine/engine.js';
import type { EngineOptions } from '../engine/engine-context.js';
import { FileSweeper } from '../engine/file-sweeper.js';
import { UploadSweeper } from '../engine/upload-sweeper.js';
import { UpstreamPool } from '../upstream/upstream-pool.js';
import { DestinationPolicy, WebhookWorker } from '../webhooks/index.js';
import { describeStores, openBlobStore, openMetaStore } from './open-stores.js';
import { replicaIdentity } from './replica-identity.js';

export interface Runtime {
  app: FastifyInstance;
  engine: Engine;
  url: string;
  replicaId: string;
  /** Graceful: stop accepting, let the engine settle within the grace period, close the stores. */
  close(): Promise<void>;
}

/** Temp files of uploads untouched this long belong to no running upload (a shared store's other replicas keep theirs fresh). */
const STALE_TEMP_MS = 3_600_000;

/** The engine's options, compiled from the configuration. */
export function engineOptions(config: Config): EngineOptions {
  return {
    maxConcurrentBatches: config.maxConcurrentBatches,
    maxLineBytes: config.maxLineBytes,
    maxRequestsPerBatch: config.maxRequestsPerBatch,
    maxValidationErrors: config.maxValidationErrors,
    endpoints: [...CORE_ENDPOINTS, ...config.extraEndpoints],
    shutdownGraceMs: config.shutdownGraceMs,
    cancelGraceMs: Math.min(config.shutdownGraceMs, config.requestTimeoutMs),
    heartbeatMs: config.progressFlushMs,
    leaseTtlMs: config.leaseTtlMs,
    shardLines: config.shardLines,
    segmentFlushMs: config.segmentFlushMs,
    segmentMaxBytes: config.segmentMaxBytes,
    claimIntervalMs: config.claimIntervalMs,
    prefixOrder: config.prefixOrder,
    prefixAffinity: config.prefixAffinity && config.upstreamBases.length > 1,
    sendPriority: config.priorityUpstreams.length > 0,
    retry: { maxAttempts: config.maxAttempts, baseMs: config.retryBaseMs, maxMs: config.retryMaxMs },
  };
}

/**
 * The composition root: opens the stores the configuration names (SQLite and ./data by default;
 * PostgreSQL and S3 for a cluster), the upstream pool and the engine, builds the HTTP app on them
 * and listens. Resources are released in reverse order of creation.
 */
export async function startRuntime(config: Config, log: PinoLogger, webDir: string): Promise<Runtime> {
  const store = await openMetaStore(config.database);
  const blobs = await openBlobStore(config.blobs);
  // Alone on its store, every temp file is a dead upload's; shared, only stale ones are.
  await blobs.cleanTemp(store.capabilities.singleReplica ? 0 : STALE_TEMP_MS);
  const upstream = new UpstreamPool({
    baseUrls: config.upstreamBases,
    apiKey: config.upstreamApiKey,
    maxWorkers: config.maxWorkersAuto ? 'auto' : config.maxWorkers,
    autoMaxPerUpstream: config.maxWorkers,
    requestTimeoutMs: config.requestTimeoutMs,
    maxResponseBytes: config.maxResponseBytes,
    healthIntervalMs: config.healthIntervalMs,
    ejectAfterFailures: config.ejectAfterFailures,
    modelsRefreshMs: config.modelsRefreshMs,
    headroom: config.upstreamHeadroom,
    maxSlowdown: config.upstreamMaxSlowdown,
    prefixAffinity: config.prefixAffinity,
    priorityUpstreams: new Set(config.priorityUpstreams),
    log,
  });
  // Health and models first, so the first batch is validated against the models served.
  await upstream.start();
  const replica = replicaIdentity(config.replicaId);
  const engine = new Engine({ store, blobs, upstream, log, maxWorkers: upstream.totalLimit, opts: engineOptions(config), replica });
  // MAX_WORKERS=auto: the engine's slots follow the sum of the upstreams' limits.
  upstream.onCapacityChange((n) => engine.setCapacity(n));
  const auth = new KeyAuthority(store, config.adminKey);
  const deps: AppDeps = { config, store, blobs, engine, upstream, webDir, auth };
  const metrics = createMetrics(deps);
  const app = await buildApp({ ...deps, metrics }, log);
  const inFlight = trackInFlight(app);
  const sweeper = new FileSweeper({ store, blobs, log, intervalMs: config.sweepIntervalMs, onDeleted: (f) => metrics.fileExpired(f.purpose) });
  const uploadSweeper = new UploadSweeper({ store, blobs, log, intervalMs: config.sweepIntervalMs });
  // The webhook outbox, sent by every replica (each delivery under a lease: one sender per attempt).
  const webhooks = new WebhookWorker({
    store,
    owner: replica.id,
    log,
    policy: new DestinationPolicy(config.webhooks.allowHosts),
    retryScheduleMs: config.webhooks.retryScheduleMs,
    timeoutMs: config.webhooks.timeoutMs,
    pollMs: config.webhooks.pollMs,
  });
  await engine.start();
  webhooks.start();
  sweeper.start();
  uploadSweeper.start();
  const address = await app.listen({ host: config.host, port: config.port });
  if ((await auth.mode()) === 'open') {
    log.warn(
      { auth: 'open' },
      'no API key configured: anyone who can reach this port can read, cancel and delete every batch. Create one with `besh keys create --project NAME --admin` or set BESH_ADMIN_KEY',
    );
  } else {
    log.info({ auth: 'keys' }, 'API keys required on every /v1 route');
  }
  log.info(
    {
      url: address,
      replica: replica.id,
      ...describeStores(config.database, config.blobs),
      upstream: upstreamLabel(config.upstreamBase),
      maxWorkers: config.maxWorkers,
      maxConcurrentBatches: config.maxConcurrentBatches,
      dataDir: config.dataDir,
    },
    `BESH listening on ${address}`,
  );

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      log.info({}, 'shutting down: settling in-flight requests');
      await sweeper.stop();
      await uploadSweeper.stop();
      // Attempts in flight get their grace; the rest stay queued (the outbox is durable).
      await webhooks.stop(Math.min(config.shutdownGraceMs, config.webhooks.timeoutMs));
      await engine.stop();
      await closeHttp(app, inFlight, config.shutdownGraceMs);
      await upstream.close();
      await store.close();
      await blobs.close();
      log.info({}, 'stopped');
    })());
  return { app, engine, url: address, replicaId: replica.id, close };
}
