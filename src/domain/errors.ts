/**
 * Every error BESH reports to a client, in one place. Each class carries the HTTP status and the
 * OpenAI error `type`/`code`, so `api/` maps any of them to the OpenAI envelope in one handler.
 * Code never tells errors apart by message.
 */
export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'insufficient_quota'
  | 'server_error';

export abstract class BeshError extends Error {
  abstract readonly status: number;
  abstract readonly type: ErrorType;
  readonly param: string | null;
  readonly code: string | null;
  /** Sent as `x-should-retry: false` where a retry can only fail the same way. */
  readonly shouldRetry: boolean | null = null;

  constructor(message: string, opts: { param?: string | null; code?: string | null; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
  }
}

export class InvalidRequestError extends BeshError {
  readonly status = 400;
  readonly type = 'invalid_request_error' as const;
}

export class AuthenticationError extends BeshError {
  readonly status = 401;
  readonly type = 'authentication_error' as const;
}

export class PermissionError extends BeshError {
  readonly status = 403;
  readonly type = 'permission_error' as const;
  override readonly shouldRetry = false;
}

/** A project limit (stored bytes, batches in progress, queued requests): waiting, not retrying, helps. */
export class QuotaExceededError extends BeshError {
  readonly status = 429;
  readonly type = 'insufficient_quota' as const;
  override readonly shouldRetry = false;
}

export class NotFoundError extends BeshError {
  readonly status = 404;
  readonly type = 'invalid_request_error' as const;
}

export class ConflictError extends BeshError {
  readonly status = 409;
  readonly type = 'invalid_request_error' as const;
  override readonly shouldRetry = false;
}

export class PayloadTooLargeError extends BeshError {
  readonly status = 413;
  readonly type = 'invalid_request_error' as const;
}

export class InsufficientStorageError extends BeshError {
  readonly status = 507;
  readonly type = 'server_error' as const;
}

export const fileNotFound = (id: string, param = 'file_id'): NotFoundError =>
  new NotFoundError(`No such File object: ${printableId(id)}`, { param, code: 'file_not_found' });

export const batchNotFound = (id: string): NotFoundError =>
  new NotFoundError(`No batch found with id '${printableId(id)}'.`, { param: 'batch_id', code: 'batch_not_found' });

/** Echo an id from the client safely: bounded and without control characters. */
export function printableId(id: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = id.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > 80 ? `${clean.slice(0, 80)}…` : clean;
}

/** Always an Error, keeping the original as `cause`. */
export function coerceError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new Error(typeof err === 'string' ? err : 'Non-error thrown', { cause: err });
}
