import type { ServerResponse } from 'node:http';

import type { FastifyInstance } from 'fastify';

import type { DashboardState } from './analytics-wiring.js';
import type { AppDeps } from './app-deps.js';
import type { KeyAuthority } from './auth.js';
import { dashboardBatch, engineView } from './dashboard-view.js';
import { listScope } from './tenancy.js';

const TICK_MS = 1000;
const HEARTBEAT_MS = 15_000;
/** A stream outlives many requests: its key is checked again this often (a revoked key ends it). */
const RECHECK_KEY_TICKS = 5;

/**
 * `GET /v1/events`: server-sent events for the dashboard.
 *   status    a batch changed status (the dashboard's batch object)
 *   deleted   {id}
 *   progress  at most once a second per running batch: counts, usage, rate, ETA
 *   engine    once a second: in-flight requests, MAX_WORKERS, queue
 * A comment line every 15 s keeps proxies from closing an idle stream. Listeners are removed
 * when the client goes away; the streams are ended when the app closes.
 */
export function eventsRoute(app: FastifyInstance, deps: AppDeps, state: DashboardState, authority: KeyAuthority): void {
  const { engine } = deps;
  const streams = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of streams) res.end();
  });

  app.get<{ Querystring: { project?: string } }>('/v1/events', (req, reply) => {
    // Only the caller's project's batches (an admin: all, or one with ?project=).
    const project = listScope(req, req.query.project);
    const mine = (p: string): boolean => project === undefined || p === project;
    void reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      'x-content-type-options': 'nosniff',
      'x-request-id': req.id,
    });
    const send = (event: string, data: unknown): void => {
      if (!res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    res.write('retry: 3000\n\n');
    send('engine', engineView(engine, project));

    const progressed = new Map<string, { counts: { total: number; completed: number; failed: number }; usage: { inputTokens: number; outputTokens: number }; inFlight: number }>();
    const ev = engine.events;
    const onStatus: Parameters<typeof ev.on<'batch:status'>>[1] = (b) => {
      if (!mine(b.project)) return;
      progressed.delete(b.id);
      send('status', dashboardBatch(b, engine, state));
    };
    const onDeleted = (id: string, p: string): void => {
      if (!mine(p)) return;
      progressed.delete(id);
      send('deleted', { id });
    };
    const onProgress: Parameters<typeof ev.on<'batch:progress'>>[1] = (p) => {
      if (mine(p.project)) progressed.set(p.batchId, p);
    };
    ev.on('batch:status', onStatus);
    ev.on('batch:deleted', onDeleted);
    ev.on('batch:progress', onProgress);

    let ticks = 0;
    const tick = setInterval(() => {
      if (++ticks % RECHECK_KEY_TICKS === 0) void authority.authenticate(req.headers.authorization).catch(() => res.end());
      for (const [id, p] of progressed) {
        const done = p.counts.completed + p.counts.failed;
        const rate = state.rates.rate(id, done, p.counts.total);
        send('progress', {
          id,
          request_counts: p.counts,
          in_flight: p.inFlight,
          input_tokens: p.usage.inputTokens,
          output_tokens: p.usage.outputTokens,
          progress: p.counts.total > 0 ? done / p.counts.total : 0,
          error_rate: done > 0 ? p.counts.failed / done : 0,
          requests_per_second: Math.round(rate.requestsPerSecond * 100) / 100,
          eta_seconds: rate.etaSeconds,
        });
      }
      progressed.clear();
      send('engine', engineView(engine, project));
    }, TICK_MS);
    const heartbeat = setInterval(() => {
      if (!res.writableEnded) res.write(': heartbeat\n\n');
    }, HEARTBEAT_MS);

    streams.add(res);
    res.once('close', () => {
      streams.delete(res);
      clearInterval(tick);
      clearInterval(heartbeat);
      ev.off('batch:status', onStatus);
      ev.off('batch:deleted', onDeleted);
      ev.off('batch:progress', onProgress);
    });
  });
}
