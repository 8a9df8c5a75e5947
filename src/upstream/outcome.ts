/**
 * What one attempt at an upstream request ended in. Retry is decided from this data alone
 * (`classifyStatus` and `retryable`), never from error messages.
 */
export type UpstreamOutcome =
  | { kind: 'response'; status: number; body: string; requestId: string | null; retryAfterMs: number | null }
  | { kind: 'network_error'; code: NetworkErrorCode; message: string }
  | { kind: 'aborted' };

export type NetworkErrorCode = 'request_timeout' | 'connection_error' | 'response_too_large';

export type StatusClass = 'success' | 'retryable' | 'terminal';

/** 2xx succeed; 408, 409 (vLLM never sends it, proxies do under contention), 429 and 5xx retry; other answers are final. */
export function classifyStatus(status: number): StatusClass {
  if (status >= 200 && status < 300) return 'success';
  switch (status) {
    case 408:
    case 409:
    case 429:
      return 'retryable';
    default:
      return status >= 500 ? 'retryable' : 'terminal';
  }
}

export function isRetryable(o: UpstreamOutcome): boolean {
  switch (o.kind) {
    case 'response':
      return classifyStatus(o.status) === 'retryable';
    case 'network_error':
      return o.code !== 'response_too_large';
    case 'aborted':
      return false;
    default:
      return assertNever(o);
  }
}

export function assertNever(x: never): never {
  throw new Error(`Unexpected value: ${JSON.stringify(x)}`);
}

/** `retry-after-ms`, then `retry-after` in seconds or as an HTTP date. */
export function parseRetryAfter(headers: Record<string, string | string[] | undefined>, now = Date.now()): number | null {
  const ms = first(headers['retry-after-ms']);
  if (ms !== undefined) {
    const n = Number(ms);
    if (Number.isFinite(n) && n >= 0) return n;
  }
  const ra = first(headers['retry-after']);
  if (ra === undefined) return null;
  const secs = Number(ra);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const date = Date.parse(ra);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
