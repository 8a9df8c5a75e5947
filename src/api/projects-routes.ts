import type { FastifyInstance } from 'fastify';

import { InvalidRequestError, NotFoundError, printableId, type ProjectLimits, RUNNING_STATUSES } from '../domain/index.js';
import type { AppDeps } from './app-deps.js';
import type { KeyAuthority } from './auth.js';
import { requireKeyAdmin } from './keys-routes.js';
import { limitsInForce, limitsView, validProject } from './tenancy.js';

/**
 * `GET /v1/me`: who the key is (the dashboard asks this first). `GET /v1/projects`: each project
 * with what it holds against its limits — all of them for an admin key, its own for any other.
 */
export function projectsRoutes(app: FastifyInstance, deps: AppDeps, authority: KeyAuthority): void {
  const { store, config } = deps;

  const projectView = async (name: string) => {
    const [usage, own, byStatus, inFlight] = await Promise.all([store.projectUsage(name), store.getProjectLimits(name), store.countBatchesByStatus(name), store.inFlightByProject()]);
    return {
      object: 'project',
      name,
      stored_bytes: usage.storedBytes,
      active_batches: usage.activeBatches,
      queued_requests: usage.queuedRequests,
      running_batches: RUNNING_STATUSES.reduce((n, s) => n + (byStatus[s] ?? 0), 0),
      in_flight: inFlight[name] ?? 0,
      limits: limitsView(limitsInForce(own, config)),
      /** The project's own settings: null = the server's default applies, 0 = no limit. */
      own_limits: limitsView(own),
    };
  };

  app.get('/v1/me', async (req) => ({
    object: 'principal',
    auth: await authority.mode(),
    project: req.principal.project,
    admin: req.principal.admin,
    key_id: req.principal.keyId,
  }));

  app.get('/v1/projects', async (req) => {
    const names = req.principal.admin ? await store.listProjects() : [req.principal.project];
    if (!names.includes(req.principal.project)) names.unshift(req.principal.project);
    return { object: 'list', data: await Promise.all(names.map(projectView)) };
  });

  app.get<{ Params: { name: string } }>('/v1/projects/:name', async (req) => {
    const name = validProject(req.params.name, 'project');
    if (!req.principal.admin && name !== req.principal.project) {
      throw new NotFoundError(`No project found with name '${printableId(name)}'.`, { param: 'project', code: 'project_not_found' });
    }
    return projectView(name);
  });

  /** Sets a project's own limits (admin keys): each a whole number ≥ 0 (0 = no limit) or null (the server's default). */
  app.post<{ Params: { name: string } }>('/v1/projects/:name/limits', async (req) => {
    requireKeyAdmin(req);
    const name = validProject(req.params.name, 'project');
    await store.setProjectLimits(name, parseLimits(req.body));
    req.log.info({ project: name, by: req.principal.keyId ?? 'BESH_ADMIN_KEY' }, 'project limits set');
    return projectView(name);
  });
}

const LIMIT_FIELDS = { max_stored_bytes: 'maxStoredBytes', max_active_batches: 'maxActiveBatches', max_queued_requests: 'maxQueuedRequests' } as const;

function parseLimits(body: unknown): Partial<ProjectLimits> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidRequestError(`The request body must be a JSON object with any of ${Object.keys(LIMIT_FIELDS).join(', ')}.`, { code: 'invalid_type' });
  }
  const out: Partial<ProjectLimits> = {};
  for (const [key, value] of Object.entries(body)) {
    const field = (LIMIT_FIELDS as Record<string, keyof ProjectLimits>)[key];
    if (field === undefined) {
      throw new InvalidRequestError(`Unknown parameter '${printableId(key)}': expected ${Object.keys(LIMIT_FIELDS).join(', ')}.`, { param: key.slice(0, 64), code: 'unknown_parameter' });
    }
    if (value !== null && !(Number.isSafeInteger(value) && (value as number) >= 0)) {
      throw new InvalidRequestError(`'${key}' must be a whole number ≥ 0 (0 = no limit) or null (the server's default).`, { param: key, code: 'invalid_value' });
    }
    out[field] = value as number | null;
  }
  return out;
}
