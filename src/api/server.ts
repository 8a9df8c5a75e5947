import type { ServerResponse } from 'node:http';
import { join } from 'node:path';

import type { FastifyInstance } from 'fastify';
import type { Logger as PinoLogger } from 'pino';

import { type Config, CORE_ENDPOINTS } from '../config.js';
import { Engine } from '../engine/engine.js';
import { FileSweeper } from '../engine/file-sweeper.js';
import { LocalBlobStore } from '../store/local-blob-store.js';
import { SqliteMetaStore } from '../store/sqlite/sqlite-meta-store.js';
import { UpstreamPool } from '../upstream/upstream-pool.js';
import { buildApp } from './app.js';
import type { AppDeps } from './app-deps.js';
import { KeyAuthority } from './auth.js';
import { createMetrics, upstreamLabel } from './metrics.js';

export interface RunningServer {
  app: FastifyInstance;
  engine: Engine;
  url: string;
  /** Graceful: stop accepting, let the engine settle within the grace period, close the store. */
  close(): Promise<void>;
}

/**
 * Wires the embedded default (SQLite + local files under BESH_DATA_DIR) and listens.
 * Resources are released in reverse order of creation.
 */
export async function startServer(config: Config, log: PinoLogger, webDir: string): Promise<RunningServer> {
  const store = SqliteMetaStore.open(join(config.dataDir, 'besh.sqlite'));
  const blobs = new LocalBlobStore(config.dataDir);
  await blobs.cleanTemp();
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
    log,
  });
  // Health and models first, so the first batch is validated against the models served.
  await upstream.start();
  const engine = new Engine({
    store,
    blobs,
    upstream,
    log,
    maxWorkers: upstream.totalLimit,
    opts: {
      maxConcurrentBatches: config.maxConcurrentBatches,
      maxLineBytes: config.maxLineBytes,
      maxRequestsPerBatch: config.maxRequestsPerBatch,
      maxValidationErrors: config.maxValidationErrors,
      endpoints: [...CORE_ENDPOINTS, ...config.extraEndpoints],
      shutdownGraceMs: config.shutdownGraceMs,
      cancelGraceMs: Math.min(config.shutdownGraceMs, config.requestTimeoutMs),
      progressFlushMs: config.progressFlushMs,
      retry: { maxAttempts: config.maxAttempts, baseMs: config.retryBaseMs, maxMs: config.retryMaxMs },
    },
  });
  // MAX_WORKERS=auto: the engine's slots follow the sum of the upstreams' limits.
  upstream.onCapacityChange((n) => engine.slots.setCapacity(n));
  const auth = new KeyAuthority(store, config.adminKey);
  const deps: AppDeps = { config, store, blobs, engine, upstream, webDir, auth };
  const metrics = createMetrics(deps);
  const app = await buildApp({ ...deps, metrics }, log);
  const inFlight = trackInFlight(app);
  const sweeper = new FileSweeper({ store, blobs, log, intervalMs: config.sweepIntervalMs, onDeleted: (f) => metrics.fileExpired(f.purpose) });
  await engine.start();
  sweeper.start();
  const address = await app.listen({ host: config.host, port: config.port });
  if ((await auth.mode()) === 'open') {
    log.warn(
      { auth: 'open' },
      'no API key configured: anyone who can reach this port can read, cancel and delete every batch. Create one with `besh keys create --project NAME --admin` or set BESH_ADMIN_KEY',
    );
  } else {
    log.info({ auth: 'keys' }, 'API keys required on every /v1 route');
  }
  log.info({ url: address, upstream: upstreamLabel(config.upstreamBase), maxWorkers: config.maxWorkers, maxConcurrentBatches: config.maxConcurrentBatches, dataDir: config.dataDir }, `BESH listening on ${address}`);

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      log.info({}, 'shutting down: settling in-flight requests');
      await sweeper.stop();
      await engine.stop();
      await closeHttp(app, inFlight, config.shutdownGraceMs);
      await upstream.close();
      await store.close();
      log.info({}, 'stopped');
    })());
  return { app, engine, url: address, close };
}

/** Responses not yet finished or aborted. */
function trackInFlight(app: FastifyInstance): Set<ServerResponse> {
  const inFlight = new Set<ServerResponse>();
  app.addHook('onRequest', async (_req, reply) => {
    const res = reply.raw;
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
  });
  return inFlight;
}

/**
 * Stops listening and lets requests in progress finish (up to `graceMs`), then drops every
 * remaining connection. Node only closes *idle* keep-alive connections by itself: a socket that is
 * connected but has not sent a complete request (a pre-opened pool connection, a half-sent
 * request) would otherwise hold the shutdown until the headers timeout.
 */
async function closeHttp(app: FastifyInstance, inFlight: Set<ServerResponse>, graceMs: number): Promise<void> {
  const closed = app.close();
  const deadline = Date.now() + graceMs;
  while (inFlight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  app.server.closeAllConnections();
  await closed;
}
