/**
 * Errors the CLI reports to its user. Each carries the process exit code; `run-action.ts` prints
 * the message and exits with it, so commands only throw.
 */

export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
/** The batch ended failed, expired or cancelled (`submit --wait`). */
export const EXIT_BATCH_UNSUCCESSFUL = 3;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_ERROR,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT_USAGE);
    this.name = 'UsageError';
  }
}

/** An HTTP answer ≥ 400 from BESH, with its OpenAI error envelope when it sent one. */
export class ApiError extends CliError {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** What the user is after when a request fails, so a 404 can say "No batch found with id …". */
export interface RequestSubject {
  kind: 'batch' | 'file';
  id: string;
}

const CONNECT_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
  UND_ERR_BODY_TIMEOUT: 'the answer stopped arriving',
  UND_ERR_SOCKET: 'the connection was closed',
  EPIPE: 'the connection was closed',
};

/** The reason a network call failed, in words ("connection refused"), or null if it was not a network failure. */
export function networkReason(err: unknown): string | null {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code in CONNECT_CODES) return CONNECT_CODES[code] ?? null;
    // Dual-stack connects (localhost → ::1 and 127.0.0.1) fail with an AggregateError.
    const inner = (e as { errors?: unknown }).errors;
    if (Array.isArray(inner) && inner.length > 0) {
      const r = networkReason(inner[0]);
      if (r) return r;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

export function unreachable(baseUrl: string, err: unknown): CliError {
  const reason = networkReason(err) ?? (err instanceof Error ? err.message : String(err));
  return new CliError(`Cannot reach BESH at ${baseUrl}: ${reason}`);
}

interface Envelope {
  error?: { message?: unknown; code?: unknown; type?: unknown; param?: unknown };
}

/** Turns an HTTP error answer into the sentence the user sees. */
export function apiError(status: number, bodyText: string, ctx: { method: string; path: string; baseUrl: string; subject?: RequestSubject | undefined }): ApiError {
  let message: string | null = null;
  let code: string | null = null;
  let param: string | null = null;
  try {
    const env = JSON.parse(bodyText) as Envelope;
    if (typeof env.error?.message === 'string') message = env.error.message;
    if (typeof env.error?.code === 'string') code = env.error.code;
    if (typeof env.error?.param === 'string') param = env.error.param;
  } catch {
    /* not JSON: a proxy or another server answered */
  }
  const detail = message ?? (bodyText.trim().slice(0, 200) || `HTTP ${status}`);
  if (status === 404 && ctx.subject && message !== null && code !== 'unknown_url') {
    return new ApiError(`No ${ctx.subject.kind} found with id ${ctx.subject.id}`, status, code);
  }
  if (status === 404) {
    return new ApiError(`${ctx.baseUrl} does not serve ${ctx.method} ${ctx.path} (${detail}). Is --base-url right? It should end in /v1.`, status, code);
  }
  if (status === 401 || status === 403) {
    return new ApiError(`Authentication failed (HTTP ${status}): ${detail} Set --api-key or OPENAI_API_KEY.`, status, code);
  }
  return new ApiError(`BESH answered HTTP ${status}: ${detail}${param && !detail.includes(param) ? ` (param: ${param})` : ''}`, status, code);
}
