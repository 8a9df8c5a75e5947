import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';

import type { FastifyInstance } from 'fastify';

/** No inline script or style, nothing from another origin (set by helmet on every answer). */
export const CONTENT_SECURITY_POLICY_DIRECTIVES: Record<string, string[]> = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'none'"],
  frameAncestors: ["'none'"],
  formAction: ["'self'"],
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json; charset=utf-8',
};

const NOT_BUILT = '<!doctype html><meta charset="utf-8"><title>BESH</title><p>The dashboard is not built: run <code>npm run build</code>.</p>';

/**
 * Serves the built dashboard (`web/dist`, a handful of small files read once at start) at `/`
 * and `/assets/<name>` (the Content-Security-Policy comes from helmet in app.ts).
 */
export function staticWeb(app: FastifyInstance, webDir: string): void {
  const dist = join(webDir, 'dist');
  const files = new Map<string, Buffer>();
  if (existsSync(dist)) {
    for (const name of readdirSync(dist)) if (TYPES[extname(name)]) files.set(name, readFileSync(join(dist, name)));
  }
  const index = files.get('index.html') ?? Buffer.from(NOT_BUILT);

  app.get('/', async (_req, reply) => reply.type(TYPES['.html']!).header('cache-control', 'no-cache').send(index));
  app.get<{ Params: { name: string } }>('/assets/:name', async (req, reply) => {
    const body = files.get(req.params.name);
    if (!body || req.params.name === 'index.html') return reply.callNotFound();
    return reply.type(TYPES[extname(req.params.name)]!).header('cache-control', 'no-cache').send(body);
  });
}
