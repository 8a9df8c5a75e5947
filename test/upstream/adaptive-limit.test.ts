import { describe, expect, it } from 'vitest';

import { AdaptiveLimit } from '../../src/upstream/adaptive-limit.js';

/**
 * A discrete-event simulation of a client keeping `limiter.limit` requests in flight against a
 * server with `capacity` slots (FIFO queue) and a fixed service time — the mock's model.
 * Returns the requests completed per second over the last `measureMs`, and the final limit.
 */
function simulate(opts: { capacity: number; serviceMs: number; durationMs: number; measureMs: number; overloadAbove?: number }): { rps: number; limit: number; limits: number[] } {
  const limiter = new AdaptiveLimit({}, 0);
  let now = 0;
  let inFlight = 0;
  let busy = 0;
  const queue: Array<{ sent: number; inFlightAtStart: number }> = [];
  // Pending completions, kept sorted by time.
  const done: Array<{ at: number; sent: number; inFlightAtStart: number; overload: boolean }> = [];
  const push = (e: (typeof done)[number]): void => {
    let i = done.length;
    while (i > 0 && done[i - 1]!.at > e.at) i--;
    done.splice(i, 0, e);
  };
  const startService = (r: { sent: number; inFlightAtStart: number }): void => {
    busy++;
    push({ at: now + opts.serviceMs, ...r, overload: false });
  };
  const fill = (): void => {
    while (inFlight < limiter.limit) {
      inFlight++;
      const r = { sent: now, inFlightAtStart: inFlight };
      if (opts.overloadAbove !== undefined && inFlight > opts.overloadAbove) {
        push({ at: now + 1, ...r, overload: true });
        continue;
      }
      if (busy < opts.capacity) startService(r);
      else queue.push(r);
    }
  };
  let completedInMeasure = 0;
  const limits: number[] = [];
  fill();
  while (now < opts.durationMs) {
    const e = done.shift()!;
    now = e.at;
    inFlight--;
    if (!e.overload) {
      busy--;
      const next = queue.shift();
      if (next) startService(next);
    }
    if (now > opts.durationMs - opts.measureMs) completedInMeasure++;
    if (limiter.record(now - e.sent, e.inFlightAtStart, e.overload, now)) limits.push(limiter.limit);
    fill();
  }
  return { rps: completedInMeasure / (opts.measureMs / 1000), limit: limiter.limit, limits };
}

describe('AdaptiveLimit', () => {
  it('starts at 8', () => {
    expect(new AdaptiveLimit().limit).toBe(8);
  });

  for (const capacity of [4, 16, 64, 200]) {
    it(`finds ≥ 97 % of the throughput of a server with capacity ${capacity}`, () => {
      const serviceMs = 50;
      const ideal = (capacity * 1000) / serviceMs;
      const r = simulate({ capacity, serviceMs, durationMs: 60_000, measureMs: 40_000 });
      expect(r.rps / ideal).toBeGreaterThanOrEqual(0.97);
      // …without piling requests up far beyond what the server takes at once.
      expect(r.limit).toBeLessThanOrEqual(Math.max(8, capacity * 2));
    });
  }

  it('backs off multiplicatively on overload (429/503/timeouts)', () => {
    const r = simulate({ capacity: 1000, serviceMs: 20, durationMs: 30_000, measureMs: 10_000, overloadAbove: 40 });
    expect(r.limit).toBeLessThanOrEqual(60);
    expect(Math.max(...r.limits)).toBeGreaterThan(40);
  });

  it('ignores windows in which the limit was not reached (no demand says nothing)', () => {
    const l = new AdaptiveLimit({}, 0);
    let t = 0;
    for (let i = 0; i < 1000; i++) l.record(50, 2, false, (t += 10));
    expect(l.limit).toBe(8);
  });
});
