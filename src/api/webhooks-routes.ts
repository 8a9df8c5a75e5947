import type { FastifyInstance, FastifyRequest } from 'fastify';

import { InvalidRequestError, nowSeconds } from '../domain/index.js';
import { newWebhookEndpointId, type WebhookEndpointRecord } from '../store/webhook-store.js';
import { DestinationError, DestinationPolicy, maxAttempts, newWebhookSecret } from '../webhooks/index.js';
import type { AppDeps } from './app-deps.js';
import { listEnvelope, parseLimit, parseOrder } from './list-params.js';
import { listScope, projectOf, visible } from './tenancy.js';
import {
  deliveryNotFound,
  endpointNotFound,
  isDeliveryId,
  isEndpointId,
  parseCreateBody,
  parseDeliveryStatus,
  parseIdParam,
  serializeDelivery,
  serializeEndpoint,
} from './webhook-views.js';

type IdParams = { Params: { id: string }; Querystring: Record<string, string | undefined> };
type ListQuery = { Querystring: Record<string, string | undefined> };

/** How long the secret before a rotation keeps signing alongside the new one. */
export const PREVIOUS_SECRET_TTL_S = 24 * 3600;

/**
 * Webhook endpoints (docs/webhooks.md): create (the secret is in the answer once), list, get,
 * delete, rotate the secret, send a test event; and their deliveries. Endpoints belong to the
 * key's project; admin keys see every project (`?project=`), as for files and batches; another
 * project's ids answer exactly as missing ones do.
 */
export function webhooksRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { store, config } = deps;
  const hooks = store.webhooks;
  const policy = new DestinationPolicy(config.webhooks.allowHosts);
  const attempts = maxAttempts(config.webhooks.retryScheduleMs);

  const endpointOr404 = async (req: FastifyRequest, id: string): Promise<WebhookEndpointRecord> => {
    const e = isEndpointId(id) ? await hooks.getEndpoint(id) : null;
    if (!e || !visible(req, e)) throw endpointNotFound(id);
    return e;
  };

  app.post('/v1/webhook_endpoints', async (req) => {
    const project = projectOf(req);
    const { url, events } = parseCreateBody(req.body);
    const checked = await checkDestination(policy, url);
    const now = nowSeconds();
    const endpoint: WebhookEndpointRecord = {
      id: newWebhookEndpointId(),
      project,
      url: checked,
      events,
      secret: newWebhookSecret(),
      previousSecret: null,
      previousSecretExpiresAt: null,
      createdAt: now,
    };
    await hooks.createEndpoint(endpoint);
    req.log.info({ endpointId: endpoint.id, project, host: new URL(checked).host }, 'webhook endpoint created');
    return { ...serializeEndpoint(endpoint, now), secret: endpoint.secret };
  });

  app.get<ListQuery>('/v1/webhook_endpoints', async (req) => {
    const q = req.query;
    const page = await hooks.listEndpoints({
      project: listScope(req, q.project),
      limit: parseLimit(q.limit, 20, 100),
      order: parseOrder(q.order),
      after: parseIdParam(q.after, 'after', isEndpointId, 'whep_'),
    });
    const now = nowSeconds();
    return listEnvelope(page.data.map((e) => serializeEndpoint(e, now)), page.hasMore);
  });

  app.get<IdParams>('/v1/webhook_endpoints/:id', async (req) => serializeEndpoint(await endpointOr404(req, req.params.id), nowSeconds()));

  app.delete<IdParams>('/v1/webhook_endpoints/:id', async (req) => {
    const e = await endpointOr404(req, req.params.id);
    await hooks.deleteEndpoint(e.id);
    req.log.info({ endpointId: e.id, project: e.project }, 'webhook endpoint deleted');
    return { id: e.id, object: 'webhook_endpoint', deleted: true };
  });

  app.post<IdParams>('/v1/webhook_endpoints/:id/rotate_secret', async (req) => {
    const e = await endpointOr404(req, req.params.id);
    const now = nowSeconds();
    const rotated = await hooks.rotateSecret(e.id, newWebhookSecret(), now + PREVIOUS_SECRET_TTL_S);
    if (!rotated) throw endpointNotFound(e.id);
    req.log.info({ endpointId: e.id, project: e.project }, 'webhook secret rotated');
    return { ...serializeEndpoint(rotated, now), secret: rotated.secret };
  });

  app.post<IdParams>('/v1/webhook_endpoints/:id/test', async (req, reply) => {
    const e = await endpointOr404(req, req.params.id);
    const d = await hooks.queueTest(e.id, nowSeconds());
    if (!d) throw endpointNotFound(e.id);
    return reply.status(202).send(serializeDelivery(d, attempts));
  });

  app.get<IdParams>('/v1/webhook_endpoints/:id/deliveries', async (req) => {
    const e = await endpointOr404(req, req.params.id);
    const q = req.query;
    const page = await hooks.listDeliveries({
      endpointId: e.id,
      status: parseDeliveryStatus(q.status),
      limit: parseLimit(q.limit, 20, 100),
      after: parseIdParam(q.after, 'after', isDeliveryId, 'wh_'),
    });
    return listEnvelope(page.data.map((d) => serializeDelivery(d, attempts)), page.hasMore);
  });

  app.get<ListQuery>('/v1/webhook_deliveries', async (req) => {
    const q = req.query;
    const page = await hooks.listDeliveries({
      project: listScope(req, q.project),
      endpointId: parseIdParam(q.endpoint_id, 'endpoint_id', isEndpointId, 'whep_'),
      status: parseDeliveryStatus(q.status),
      limit: parseLimit(q.limit, 20, 100),
      after: parseIdParam(q.after, 'after', isDeliveryId, 'wh_'),
    });
    return listEnvelope(page.data.map((d) => serializeDelivery(d, attempts)), page.hasMore);
  });

  app.get<IdParams>('/v1/webhook_deliveries/:id', async (req) => {
    const id = req.params.id;
    const d = isDeliveryId(id) ? await hooks.getDelivery(id) : null;
    if (!d || !visible(req, d)) throw deliveryNotFound(id);
    return serializeDelivery(d, attempts);
  });
}

/** The URL as stored (normalised), once its host resolves only to allowed addresses; a 400 otherwise, nothing stored. */
async function checkDestination(policy: DestinationPolicy, url: string): Promise<string> {
  try {
    return (await policy.checkUrl(url)).href;
  } catch (err) {
    if (!(err instanceof DestinationError)) throw err;
    if (err.reason === 'not_allowed') throw new InvalidRequestError(err.message, { param: 'url', code: 'destination_not_allowed' });
    throw new InvalidRequestError(`Invalid 'url': ${err.message}`, { param: 'url', code: 'invalid_url' });
  }
}
