import { ANALYTICS_COUNTERS, type AnalyticsMinute, emptyMinute } from '../store/meta-store.js';

export const MINUTE = 60;
export const QUARTER = 15 * MINUTE;
export const DAY = 24 * 60 * MINUTE;

/** Start (unix seconds) of the `step`-second bucket holding `seconds`. */
export const bucketOf = (seconds: number, step: number): number => Math.floor(seconds / step) * step;

/** Adds `b`'s counters into `a`. */
export function addInto(a: AnalyticsMinute, b: AnalyticsMinute): void {
  for (const c of ANALYTICS_COUNTERS) a[c] += b[c];
}

/**
 * Rolls minutes up into consecutive `step`-second buckets covering [from, to), empty buckets
 * included so a chart has no gaps. `from` is rounded down to a bucket boundary.
 */
export function rollUp(minutes: readonly AnalyticsMinute[], from: number, to: number, step: number): AnalyticsMinute[] {
  const start = bucketOf(from, step);
  const out: AnalyticsMinute[] = [];
  for (let t = start; t < to; t += step) out.push(emptyMinute(t));
  for (const m of minutes) {
    const i = Math.floor((m.minute - start) / step);
    const bucket = out[i];
    if (bucket && m.minute < to) addInto(bucket, m);
  }
  return out;
}

/** Sum of every counter over the minutes. */
export function total(minutes: readonly AnalyticsMinute[]): AnalyticsMinute {
  const t = emptyMinute(0);
  for (const m of minutes) addInto(t, m);
  return t;
}
