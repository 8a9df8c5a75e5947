import type { ServerResponse } from 'node:http';

export type ErrorType = 'invalid_request_error' | 'rate_limit_error' | 'server_error';

/** A client mistake the handler answers with an OpenAI error envelope. */
export class MockRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = 'MockRequestError';
  }
}

/** `{error:{message,type,param,code}}`, as OpenAI and vLLM send it. */
export function errorEnvelope(
  message: string,
  type: ErrorType = 'invalid_request_error',
  code: string | null = null,
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
