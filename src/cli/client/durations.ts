import { UsageError } from './errors.js';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** "90s", "30m", "12h", "7d", "2w" → seconds. */
export function parseAge(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([smhdw])$/i.exec(text.trim());
  if (!m) throw new UsageError(`Invalid ${flag} '${text}': expected a number and a unit, e.g. 30m, 12h, 7d or 2w.`);
  return Number(m[1]) * (UNIT_SECONDS[m[2]!.toLowerCase()] ?? 1);
}

/** A positive integer option ("--lines 5"); `min` 0 allows zero. */
export function parseCount(text: string, flag: string, min = 1): number {
  if (!/^\d{1,9}$/.test(text.trim()) || Number(text) < min) throw new UsageError(`Invalid ${flag} '${text}': expected an integer ≥ ${min}.`);
  return Number(text);
}
