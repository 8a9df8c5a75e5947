import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions, LogController } from 'fastify';

import { InvalidRequestError, newRequestId, printableId } from '../domain/index.js';
import { analyticsRoutes } from './analytics-routes.js';
import { wireAnalytics } from './analytics-wiring.js';
import type { AppDeps } from './app-deps.js';
import { installAuth, KeyAuthority } from './auth.js';
import { batchesRoutes } from './batches-routes.js';
import { envelope, installErrorHandling } from './error-handler.js';
import { eventsRoute } from './events-route.js';
import { filesRoutes } from './files-routes.js';
import { healthRoutes } from './health-routes.js';
import { keysRoutes } from './keys-routes.js';
import { createMetrics, metricsRoutes } from './metrics.js';
import { projectsRoutes } from './projects-routes.js';
import { resultsRoutes } from './results-routes.js';
import { HELMET_OPTIONS, setSecurityHeaders } from './security-headers.js';
import { staticWeb } from './static-web.js';
import { statusRoutes } from './status-routes.js';
import { uploadsRoutes } from './uploads-routes.js';
import { webhooksRoutes } from './webhooks-routes.js';

const JSON_BODY_LIMIT = 1024 * 1024;
const INCOMING_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;
const printablePath = (url: string): string => printableId(url.split('?')[0]!);

/** Builds the HTTP app without listening (tests may `inject`); api/server.ts listens. */
export async function buildApp(deps: AppDeps, logger: FastifyServerOptions['loggerInstance']): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger,
    // A load balancer's (or client's) well-formed X-Request-Id is kept, so one id follows a request
    // through nginx and BESH's logs; anything else gets BESH's own.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && INCOMING_REQUEST_ID.test(given) ? given : newRequestId();
    },
    logController: new LogController({ requestIdLogLabel: 'requestId', disableRequestLogging: true }),
    bodyLimit: JSON_BODY_LIMIT,
    return503OnClosing: true,
    // Router-level failures (an id past maxParamLength, bad percent-encoding) get the OpenAI
    // envelope and an x-request-id too: such a path cannot name any object, so 404.
    frameworkErrors: (_err, req, reply) => {
      setSecurityHeaders(req.raw, reply.raw);
      void (reply as FastifyReply)
        .header('x-request-id', req.id)
        .status(404)
        .send(envelope(`Unknown request URL: ${req.method} ${printablePath(req.url)}.`, 'invalid_request_error', null, 'unknown_url'));
    },
  }) as unknown as FastifyInstance;

  // The SDKs may send `Content-Type: application/json` with an empty body (GET, DELETE, cancel).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: JSON_BODY_LIMIT }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new InvalidRequestError('The request body is not valid JSON.', { code: 'invalid_json' }), undefined);
    }
  });

  await app.register(multipart, {
    limits: { fileSize: deps.config.maxFileBytes, files: 1, fields: 10, fieldSize: 4096, parts: 20, headerPairs: 100 },
  });

  installErrorHandling(app);
  app.addHook('onSend', async (req, reply) => {
    void reply.header('x-request-id', req.id);
  });
  await app.register(helmet, HELMET_OPTIONS);
  // CORS is off (no Access-Control-* headers: browsers keep other origins out) unless origins are configured.
  if (deps.config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: deps.config.corsOrigins.includes('*') ? '*' : [...deps.config.corsOrigins],
      methods: ['GET', 'POST', 'DELETE'],
      exposedHeaders: ['x-request-id', 'x-should-retry', 'x-besh-cursor', 'x-besh-results-complete', 'x-besh-batch-status', 'x-besh-result-kind', 'x-besh-bytes-read'],
      maxAge: 600,
    });
  }
  const authority = deps.auth ?? new KeyAuthority(deps.store, deps.config.adminKey);
  installAuth(app, authority);
  app.addHook('onResponse', async (req, reply) => {
    const line = { method: req.method, url: req.url.slice(0, 200), status: reply.statusCode, ms: Math.round(reply.elapsedTime) };
    if (reply.statusCode >= 500) req.log.error(line, 'request failed');
    else if (req.method !== 'GET') req.log.info(line, 'request');
    else req.log.debug(line, 'request');
  });

  staticWeb(app, deps.webDir);
  const dashboard = wireAnalytics(app, deps);
  analyticsRoutes(app, deps, dashboard); // before batchesRoutes: /v1/batches/dashboard is not a batch id
  eventsRoute(app, deps, dashboard, authority);

  const metrics = deps.metrics ?? createMetrics(deps);
  healthRoutes(app, deps);
  metricsRoutes(app, deps, metrics);
  filesRoutes(app, deps, {
    uploaded: (bytes, project) => {
      metrics.uploaded(bytes);
      dashboard.recorder.upload(project, bytes);
    },
  });
  uploadsRoutes(app, deps, {
    uploaded: (bytes, project) => {
      metrics.uploaded(bytes);
      dashboard.recorder.upload(project, bytes);
    },
  });
  projectsRoutes(app, deps, authority);
  keysRoutes(app, deps);
  webhooksRoutes(app, deps);
  statusRoutes(app, deps); // before batchesRoutes: /v1/batches/status is not a batch id
  resultsRoutes(app, deps); // GET /v1/batches/:id/results, before /v1/batches/:id
  batchesRoutes(app, deps, dashboard.rates);
  return app;
}
