import { describe, expect, it } from 'vitest';

import { retryDelayMs } from '../../src/engine/retry-policy.js';

const policy = { maxAttempts: 6, baseMs: 100, maxMs: 5_000 };
const lo = (): number => 0;
const hi = (): number => 0.999_999;

describe('retryDelayMs', () => {
  it('backs off exponentially with jitter between half and all of base·2^(attempt-1)', () => {
    for (let attempt = 1; attempt <= 6; attempt++) {
      const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
      expect(retryDelayMs(policy, attempt, null, lo)).toBeCloseTo(exp / 2, 6);
      expect(retryDelayMs(policy, attempt, null, hi)).toBeCloseTo(exp, 2);
      for (let i = 0; i < 200; i++) {
        const d = retryDelayMs(policy, attempt, null);
        expect(d).toBeGreaterThanOrEqual(exp / 2);
        expect(d).toBeLessThanOrEqual(exp);
      }
    }
    expect(retryDelayMs(policy, 1, null, lo)).toBe(50);
    expect(retryDelayMs(policy, 2, null, lo)).toBe(100);
    expect(retryDelayMs(policy, 3, null, lo)).toBe(200);
  });

  it('grows with the attempt number', () => {
    const a = [1, 2, 3, 4, 5].map((n) => retryDelayMs(policy, n, null, () => 0.5));
    for (let i = 1; i < a.length; i++) expect(a[i]).toBeGreaterThan(a[i - 1]!);
  });

  it('is capped at maxMs, also for huge attempt numbers (no Infinity/NaN)', () => {
    for (const attempt of [7, 10, 31, 50, 1000, 1e9]) {
      const d = retryDelayMs(policy, attempt, null, hi);
      expect(Number.isFinite(d)).toBe(true);
      expect(d).toBeLessThanOrEqual(policy.maxMs);
      expect(d).toBeGreaterThanOrEqual(policy.maxMs / 2);
    }
    const p = { maxAttempts: 3, baseMs: 1, maxMs: 1 };
    expect(retryDelayMs(p, 100, null, hi)).toBeLessThanOrEqual(1);
  });

  it('honours a Retry-After longer than the backoff', () => {
    expect(retryDelayMs(policy, 1, 1_000, hi)).toBe(1_000);
    expect(retryDelayMs(policy, 3, 2_500, hi)).toBe(2_500);
    for (let i = 0; i < 100; i++) expect(retryDelayMs(policy, 1, 1_000)).toBeGreaterThanOrEqual(1_000);
    // A server asking for longer than maxMs is still obeyed (the batch deadline bounds the wait).
    expect(retryDelayMs(policy, 1, 20_000, hi)).toBe(20_000);
  });

  it('a short or zero Retry-After still waits a little, never more than the backoff', () => {
    const d0 = retryDelayMs(policy, 4, 0, hi);
    expect(d0).toBeGreaterThan(0);
    expect(d0).toBeLessThanOrEqual(retryDelayMs(policy, 4, null, hi));
    const d = retryDelayMs(policy, 4, 10, () => 0.5);
    expect(d).toBeGreaterThanOrEqual(10);
    expect(d).toBeLessThanOrEqual(policy.baseMs * 8);
  });
});
