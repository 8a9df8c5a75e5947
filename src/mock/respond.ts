import type { ServerResponse } from 'node:http';

/** OpenAI's error types, and the exception names vLLM puts there instead (e.g. `BadRequestError`). */
export type ErrorType = 'invalid_request_error' | 'rate_limit_error' | 'server_error' | 'BadRequestError';

/** A client mistake the handler answers with an OpenAI error envelope. */
export class MockRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | number | null = null,
    readonly param: string | null = null,
    readonly type: ErrorType = 'invalid_request_error',
  ) {
    super(message);
    this.name = 'MockRequestError';
  }
}

/** `{error:{message,type,param,code}}`, as OpenAI and vLLM send it (vLLM: type = exception name, code = status). */
export function errorEnvelope(
  message: string,
  type: ErrorType = 'invalid_request_error',
  code: string | number | null = null,
  param: string | null = null,
): string {
  return JSON.stringify({ error: { message, type, param, code } });
}

/** Writes a complete JSON response with its `x-request-id`. */
export function writeJson(
  res: ServerResponse,
  status: number,
  body: string,
  requestId: string,
  retryAfter?: number,
): void {
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
  };
  if (retryAfter !== undefined) headers['retry-after'] = retryAfter;
  res.writeHead(status, headers);
  res.end(body);
}

/** Writes a complete plain-text response (Prometheus exposition format 0.0.4). */
export function writeMetrics(res: ServerResponse, body: string): void {
  res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
