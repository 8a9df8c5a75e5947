import type { ServerResponse } from 'node:http';

import type { FastifyInstance } from 'fastify';

import type { BatchRecord } from '../domain/index.js';
import type { StoreEvent } from '../store/meta-store.js';
import type { DashboardState } from './analytics-wiring.js';
import type { AppDeps } from './app-deps.js';
import type { KeyAuthority } from './auth.js';
import { deadlineView } from './batch-deadline.js';
import { engineView, queuePositions } from './cluster-view.js';
import { dashboardBatch } from './dashboard-view.js';
import { listScope } from './tenancy.js';

const TICK_MS = 1000;
const HEARTBEAT_MS = 15_000;
/** A stream outlives many requests: its key is checked again this often (a revoked key ends it). */
const RECHECK_KEY_TICKS = 5;

/**
 * `GET /v1/events`: server-sent events for the dashboard, for the whole cluster (any replica
 * serves the same stream):
 *   status    a batch changed status, on any replica (the store's change feed)
 *   deleted   {id}
 *   progress  once a second per running batch: counts, usage, rate, ETA (live from the store)
 *   engine    once a second: in-flight requests and worker limits of the cluster, queue, replicas
 * A comment line every 15 s keeps proxies from closing an idle stream. Listeners are removed
 * when the client goes away; the streams are ended when the app closes.
 */
export function eventsRoute(app: FastifyInstance, deps: AppDeps, state: DashboardState, authority: KeyAuthority): void {
  const { store } = deps;
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
    const sendEngine = (): Promise<void> =>
      engineView(deps, project).then(
        (v) => send('engine', v),
        () => undefined,
      );
    res.write('retry: 3000\n\n');
    void sendEngine();

    const onChange = (e: StoreEvent): void => {
      if (e.type === 'batch_deleted') {
        if (mine(e.project)) send('deleted', { id: e.id });
        return;
      }
      if (e.type !== 'batch' || !mine(e.project)) return;
      void Promise.all([store.getBatch(e.id), queuePositions(deps)]).then(
        ([b, positions]) => {
          if (b) send('status', dashboardBatch(b, state, positions));
        },
        () => undefined,
      );
    };
    const onTick = (running: readonly BatchRecord[]): void => {
      for (const b of running) {
        if (!mine(b.project)) continue;
        const c = b.requestCounts;
        const done = c.completed + c.failed;
        const rate = state.rates.rate(b.id, done, c.total);
        send('progress', {
          id: b.id,
          request_counts: c,
          in_flight: b.inFlight,
          input_tokens: b.usage.inputTokens,
          output_tokens: b.usage.outputTokens,
          progress: c.total > 0 ? done / c.total : 0,
          error_rate: done > 0 ? c.failed / done : 0,
          requests_per_second: Math.round(rate.requestsPerSecond * 100) / 100,
          eta_seconds: rate.etaSeconds,
          ...deadlineView(b, state.rates),
        });
      }
    };
    const unsubscribe = store.subscribe(onChange);
    const offTick = state.progress.onTick(onTick);

    let ticks = 0;
    const tick = setInterval(() => {
      if (++ticks % RECHECK_KEY_TICKS === 0) void authority.authenticate(req.headers.authorization).catch(() => res.end());
      void sendEngine();
    }, TICK_MS);
    const heartbeat = setInterval(() => {
      if (!res.writableEnded) res.write(': heartbeat\n\n');
    }, HEARTBEAT_MS);

    streams.add(res);
    res.once('close', () => {
      streams.delete(res);
      clearInterval(tick);
      clearInterval(heartbeat);
      unsubscribe();
      offTick();
    });
  });
}
