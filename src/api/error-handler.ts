import type { FastifyError, FastifyInstance } from 'fastify';

import { BeshError } from '../domain/index.js';

/** OpenAI's error envelope: {error:{message,type,param,code}}. */
export function envelope(message: string, type: string, param: string | null = null, code: string | null = null): { error: Record<string, unknown> } {
  return { error: { message, type, param, code } };
}

/**
 * Maps every error to OpenAI's envelope, once. Typed BeshErrors carry their status; Fastify's own
 * errors (bad JSON, body too large, unsupported media type) keep their 4xx status; anything else
 * is logged and answered with a generic 500 that reveals nothing.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(async (err: FastifyError | BeshError | Error, req, reply) => {
    // Refused before the body was read (too large, no key, over quota): read it so the client sees the answer.
    if ((err as FastifyError).code === 'FST_ERR_CTP_BODY_TOO_LARGE' || (err instanceof BeshError && REFUSED_UNREAD.has(err.status))) await drainBody(req.raw);
    if (err instanceof BeshError) {
      if (err.shouldRetry === false) void reply.header('x-should-retry', 'false');
      return reply.status(err.status).send(envelope(err.message, err.type, err.param, err.code));
    }
    const status = (err as FastifyError).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      const fe = err as FastifyError;
      return reply.status(status).send(envelope(clientMessage(fe, req.headers['content-type']), 'invalid_request_error', null, clientCode(fe)));
    }
    req.log.error({ err }, 'unhandled error');
    return reply.status(500).send(envelope('The server had an error while processing your request.', 'server_error'));
  });

  app.setNotFoundHandler((req, reply) => {
    void reply
      .status(404)
      .send(envelope(`Unknown request URL: ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}.`, 'invalid_request_error', null, 'unknown_url'));
  });
}

const REFUSED_UNREAD: ReadonlySet<number> = new Set([401, 403, 429]);

/** Read and discard at most this much of a refused body before answering. */
const DRAIN_LIMIT = 16 * 1024 * 1024;

/**
 * A body over the limit is refused on its content-length, before it is read (so is a request
 * without a valid key, or over its project's quota). Answering
 * then closes the connection under a client that is still writing, which most clients report as
 * EPIPE instead of our 413. Reading a moderately large rest first lets the client see the answer;
 * a larger one is cut short.
 */
function drainBody(raw: NodeJS.ReadableStream & { readableEnded?: boolean }): Promise<void> {
  if (raw.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    let seen = 0;
    const done = (): void => {
      raw.removeListener('data', onData);
      raw.removeListener('end', done);
      raw.removeListener('error', done);
      resolve();
    };
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen > DRAIN_LIMIT) done();
    };
    raw.on('data', onData);
    raw.once('end', done);
    raw.once('error', done);
    raw.resume();
  });
}

function clientMessage(err: FastifyError, contentType: string | undefined): string {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'The request body is not valid JSON.';
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'The request body is too large.';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return `Unsupported Content-Type '${printable(contentType ?? '')}': send the body as application/json.`;
    default:
      return err.message;
  }
}

/**
 * Our documented code for a framework 4xx (docs/errors.md); Fastify's own `FST_…` codes are
 * internal names, never sent.
 */
function clientCode(err: FastifyError): string | null {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'invalid_json';
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return REQUEST_TOO_LARGE.code;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return INVALID_CONTENT_TYPE.code;
    default:
      return null;
  }
}

// Written as `code: '…'` so test/docs/errors-doc.test.ts sees them.
const REQUEST_TOO_LARGE = { code: 'request_too_large' } as const;
const INVALID_CONTENT_TYPE = { code: 'invalid_content_type' } as const;

const printable = (s: string): string => {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 100 ? `${clean.slice(0, 100)}…` : clean;
};
