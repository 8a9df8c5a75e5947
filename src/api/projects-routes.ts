import type { FastifyInstance } from 'fastify';

import { NotFoundError, printableId } from '../domain/index.js';
import type { AppDeps } from './app-deps.js';
import type { KeyAuthority } from './auth.js';
import { limitsOf, limitsView, validProject } from './tenancy.js';

/**
 * `GET /v1/me`: who the key is (the dashboard asks this first). `GET /v1/projects`: each project
 * with what it holds against its limits — all of them for an admin key, its own for any other.
 */
export function projectsRoutes(app: FastifyInstance, deps: AppDeps, authority: KeyAuthority): void {
  const { store, config, engine } = deps;

  const projectView = async (name: string) => {
    const usage = await store.projectUsage(name);
    return {
      object: 'project',
      name,
      stored_bytes: usage.storedBytes,
      active_batches: usage.activeBatches,
      queued_requests: usage.queuedRequests,
      running_batches: engine.activeIn(name),
      in_flight: engine.slots.heldByGroup(name),
      limits: limitsView(await limitsOf(store, config, name)),
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
}
