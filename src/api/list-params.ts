import { InvalidRequestError } from '../domain/index.js';

/** Parses `limit` strictly: an integer in [1, max], default `def`. */
export function parseLimit(raw: unknown, def: number, max: number): number {
  if (raw === undefined || raw === '') return def;
  const s = typeof raw === 'string' ? raw : '';
  if (!/^\d{1,9}$/.test(s)) throw new InvalidRequestError(`Invalid 'limit': expected an integer between 1 and ${max}.`, { param: 'limit', code: 'invalid_value' });
  const n = Number(s);
  if (n < 1 || n > max) throw new InvalidRequestError(`Invalid 'limit': ${n} is not between 1 and ${max}.`, { param: 'limit', code: 'invalid_value' });
  return n;
}

/** `after` is an object id; anything that cannot be one of ours is refused with a clear 400. */
export function parseAfter(raw: unknown, prefix: 'file-' | 'batch_'): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  const s = typeof raw === 'string' ? raw : '';
  if (!s.startsWith(prefix) || s.length > 100 || !/^[A-Za-z0-9_-]+$/.test(s)) {
    throw new InvalidRequestError(`Invalid 'after': expected an id starting with '${prefix}'.`, { param: 'after', code: 'invalid_value' });
  }
  return s;
}

export function parseOrder(raw: unknown): 'asc' | 'desc' {
  if (raw === undefined || raw === '') return 'desc';
  if (raw === 'asc' || raw === 'desc') return raw;
  throw new InvalidRequestError(`Invalid 'order': expected 'asc' or 'desc'.`, { param: 'order', code: 'invalid_value' });
}

/** The list envelope the SDKs paginate with (has_more must be exact). */
export function listEnvelope(data: Array<Record<string, unknown>>, hasMore: boolean): Record<string, unknown> {
  return {
    object: 'list',
    data,
    first_id: data.length > 0 ? data[0]!.id : null,
    last_id: data.length > 0 ? data[data.length - 1]!.id : null,
    has_more: hasMore,
  };
}
