import type { ServerResponse } from 'node:http';
import { join } from 'node:path';

import type { FastifyInstance } from 'fastify';
import type { Logger as PinoLogger } from 'pino';

import { type Config, CORE_ENDPOINTS } from '../config.js';
import { Engine } from '../engine/engine.js';
import { LocalBlobStore } from '../store/local-blob-store.js';
import { SqliteMetaStore } from '../store/sqlite/sqlite-meta-store.js';
import { UpstreamClient } from '../upstream/upstream-client.js';
import { buildApp } from './app.js';

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
  const upstream = new UpstreamClient({
    baseUrl: config.upstreamBase,
    apiKey: config.upstreamApiKey,
    connections: config.maxWorkers,
    requestTimeoutMs: config.requestTimeoutMs,
    maxResponseBytes: config.maxResponseBytes,
  });
  const engine = new Engine({
    store,
    blobs,
    upstream,
    log,
    maxWorkers: config.maxWorkers,
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
  const app = await buildApp({ config, store, blobs, engine, upstream, webDir }, log);
  const inFlight = trackInFlight(app);
  await engine.start();
  const address = await app.listen({ host: config.host, port: config.port });
  log.info({ url: address, upstream: config.upstreamBase, maxWorkers: config.maxWorkers, maxConcurrentBatches: config.maxConcurrentBatches, dataDir: config.dataDir }, `BESH listening on ${address}`);

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      log.info({}, 'shutting down: settling in-flight requests');
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
