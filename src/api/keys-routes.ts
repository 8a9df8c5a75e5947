import type { FastifyInstance, FastifyRequest } from 'fastify';

import { InvalidRequestError, mintApiKey, NotFoundError, nowSeconds, PermissionError, printableId, serializeApiKey } from '../domain/index.js';
import type { AppDeps } from './app-deps.js';
import { validProject } from './tenancy.js';

/**
 * Key management over HTTP for admin keys (`besh keys … --base-url`): list, create (the secret
 * is in the answer once), revoke. Open mode cannot use it: whoever reaches an open BESH could
 * otherwise create the first key and lock its operators out; the first key is made with
 * `besh keys create` where the data lives, or comes from BESH_ADMIN_KEY.
 */
export function keysRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { store } = deps;

  app.get('/v1/keys', async (req) => {
    requireKeyAdmin(req);
    return { object: 'list', data: (await store.listApiKeys()).map(serializeApiKey) };
  });

  app.post('/v1/keys', async (req) => {
    requireKeyAdmin(req);
    const body = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new InvalidRequestError('The request body must be a JSON object: {"project": "…", "admin": false, "name": "…"}.', { code: 'invalid_type' });
    }
    const { project, admin, name } = body as Record<string, unknown>;
    if (typeof project !== 'string') throw new InvalidRequestError("Missing required parameter: 'project'.", { param: 'project', code: 'missing_required_parameter' });
    if (admin !== undefined && typeof admin !== 'boolean') throw new InvalidRequestError("'admin' must be a boolean.", { param: 'admin', code: 'invalid_type' });
    if (name !== undefined && name !== null && typeof name !== 'string') throw new InvalidRequestError("'name' must be a string.", { param: 'name', code: 'invalid_type' });
    const { record, secret } = mintApiKey(validProject(project, 'project'), admin === true, name ?? null, nowSeconds());
    await store.insertApiKey(record);
    req.log.info({ keyId: record.id, project: record.project, admin: record.admin, by: req.principal.keyId ?? 'BESH_ADMIN_KEY' }, 'api key created');
    return { ...serializeApiKey(record), key: secret };
  });

  app.delete<{ Params: { id: string } }>('/v1/keys/:id', async (req) => {
    requireKeyAdmin(req);
    const id = req.params.id;
    if (!(await store.revokeApiKey(id, nowSeconds()))) {
      throw new NotFoundError(`No active API key with id '${printableId(id)}'.`, { param: 'key_id', code: 'key_not_found' });
    }
    req.log.info({ keyId: id, by: req.principal.keyId ?? 'BESH_ADMIN_KEY' }, 'api key revoked');
    return { id, object: 'api_key', revoked: true };
  });
}

/** Admin keys only; never open mode (see above). */
export function requireKeyAdmin(req: FastifyRequest): void {
  if (!req.principal.admin || req.principal.auth !== 'keys') {
    throw new PermissionError(
      req.principal.auth === 'open'
        ? 'BESH runs without keys: create the first one with `besh keys create` on the server (or set BESH_ADMIN_KEY), then use an admin key.'
        : 'This route needs an admin key.',
      { code: 'admin_key_required' },
    );
  }
}
