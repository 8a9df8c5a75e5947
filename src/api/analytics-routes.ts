import type { FastifyInstance } from 'fastify';

import { BATCH_STATUSES, batchNotFound, type BatchStatus, InvalidRequestError, isWellFormedId } from '../domain/index.js';
import type { DashboardState } from './analytics-wiring.js';
import type { AppDeps } from './app-deps.js';
import { engineView, queuePositions } from './cluster-view.js';
import { dashboardBatch } from './dashboard-view.js';
import { parseLimit } from './list-params.js';
import { listScope, visible } from './tenancy.js';

type Query = { Querystring: Record<string, string | undefined> };

/** An integer query parameter in [1, max], default `def`. */
function intParam(raw: string | undefined, name: string, def: number, max: number): number {
  if (raw === undefined || raw === '') return def;
  const n = /^\d{1,6}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= max)) throw new InvalidRequestError(`Invalid '${name}': expected an integer between 1 and ${max}.`, { param: name, code: 'invalid_value' });
  return n;
}

function statusParam(raw: string | undefined): BatchStatus | undefined {
  if (raw === undefined || raw === '' || raw === 'all') return undefined;
  if ((BATCH_STATUSES as readonly string[]).includes(raw)) return raw as BatchStatus;
  throw new InvalidRequestError(`Invalid 'status': expected one of ${BATCH_STATUSES.join(', ')}.`, { param: 'status', code: 'invalid_value' });
}

/**
 * The dashboard's read API. Static paths under /v1/batches/ win over `/v1/batches/:id` in
 * Fastify's router whatever the registration order; they are registered first all the same.
 */
export function analyticsRoutes(app: FastifyInstance, deps: AppDeps, state: DashboardState): void {
  const { store } = deps;
  const { queries } = state;

  // Every view is of the caller's project; an admin sees all projects, or one with `?project=`.
  app.get<Query>('/v1/batches/analytics/timeline', async (req) =>
    queries.timeline(intParam(req.query.hours, 'hours', 24, 168), listScope(req, req.query.project)),
  );
  app.get<Query>('/v1/batches/analytics/tokens', async (req) => queries.tokens(intParam(req.query.hours, 'hours', 24, 168), listScope(req, req.query.project)));

  /** Live charts and engine panel: requests and tokens per minute (last hour by default). */
  app.get<Query>('/v1/batches/analytics/live', async (req) => {
    const project = listScope(req, req.query.project);
    return {
      object: 'analytics.live',
      ...(await queries.perMinute(intParam(req.query.minutes, 'minutes', 60, 1440), project)),
      engine: await engineView(deps, project),
    };
  });

  app.get<Query>('/v1/batches/dashboard', async (req) => {
    const status = statusParam(req.query.status);
    const limit = parseLimit(req.query.limit, 20, 100);
    const page = intParam(req.query.page, 'page', 1, 1_000_000);
    const project = listScope(req, req.query.project);
    const { data, total } = await store.listBatchesPage({ project, status, limit, offset: (page - 1) * limit });
    const positions = await queuePositions(deps);
    return {
      object: 'dashboard',
      data: data.map((b) => dashboardBatch(b, state, positions)),
      page,
      limit,
      total,
      has_more: page * limit < total,
      summary: await queries.summary(project),
      engine: await engineView(deps, project),
    };
  });

  app.get<{ Params: { id: string } }>('/v1/batches/:id/token_usage', async (req) => {
    const b = isWellFormedId(req.params.id) ? await store.getBatch(req.params.id) : null;
    if (!b || !visible(req, b)) throw batchNotFound(req.params.id);
    const v = dashboardBatch(b, state, new Map());
    const usage = b.usage;
    return {
      object: 'batch.token_usage',
      batch_id: b.id,
      status: b.status,
      model: b.model,
      request_counts: v.request_counts,
      input_tokens: usage.inputTokens,
      cached_tokens: usage.cachedTokens,
      output_tokens: usage.outputTokens,
      reasoning_tokens: usage.reasoningTokens,
      total_tokens: usage.totalTokens,
      requests_per_second: v.requests_per_second,
      eta_seconds: v.eta_seconds,
      elapsed_seconds: v.elapsed_seconds,
    };
  });
}
