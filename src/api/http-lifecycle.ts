import type { ServerResponse } from 'node:http';

import type { FastifyInstance } from 'fastify';

/** Responses not yet finished or aborted. */
export function trackInFlight(app: FastifyInstance): Set<ServerResponse> {
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
export async function closeHttp(app: FastifyInstance, inFlight: Set<ServerResponse>, graceMs: number): Promise<void> {
  const closed = app.close();
  const deadline = Date.now() + graceMs;
  while (inFlight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  app.server.closeAllConnections();
  await closed;
}
