import type { Page } from '../../domain/index.js';

/** Larger than any `seq`: the cursor of a descending list that starts at the top. */
export const SEQ_TOP = Number.MAX_SAFE_INTEGER;

/** A page size or offset as SQL takes it: a whole number, never negative. */
export const whole = (n: number): number => Math.max(0, Math.floor(n));

/** A page from `limit + 1` fetched rows: the extra row only tells that there are more (an exact `hasMore`). */
export function toPage<R, T>(rows: R[], limit: number, map: (row: R) => T): Page<T> {
  return { data: rows.slice(0, limit).map(map), hasMore: rows.length > limit };
}
