import { afterEach, describe, expect, it } from 'vitest';

import { UpstreamPool, type UpstreamPoolOptions } from '../../src/upstream/upstream-pool.js';
import { type FakeVllm, type FakeVllmOptions, startFakeVllm } from './support/fake-vllm.js';

const toClose: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(toClose.splice(0).map((c) => c.close().catch(() => undefined)));
});

async function fake(o: Partial<FakeVllmOptions> = {}): Promise<FakeVllm> {
  const s = await startFakeVllm({ maxNumSeqs: 12, serviceMs: 30, ...o });
  toClose.push(s);
  return s;
}

function pool(ss: FakeVllm[], o: Partial<UpstreamPoolOptions> = {}): UpstreamPool {
  const p = new UpstreamPool({
    baseUrls: ss.map((s) => `${s.url}/v1`),
    apiKey: null,
    maxWorkers: 'auto',
    autoMaxPerUpstream: 256,
    requestTimeoutMs: 5000,
    maxResponseBytes: 1 << 20,
    healthIntervalMs: 0,
    ejectAfterFailures: 3,
    modelsRefreshMs: 0,
    metricsIntervalMs: 50,
    ...o,
  });
  toClose.push(p);
  return p;
}

const never = new AbortController().signal;
const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });

/** Keeps the pool's total limit in flight (as the engine's slots do) until `until` resolves true. */
async function drive(p: UpstreamPool, until: () => boolean, maxMs: number): Promise<void> {
  let next = 0;
  let inFlight = 0;
  const deadline = Date.now() + maxMs;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      if (until() || Date.now() > deadline) {
        if (inFlight === 0) resolve();
        return;
      }
      while (inFlight < p.totalLimit) {
        inFlight++;
        void p.send({ url: '/v1/chat/completions', body, customId: `r${next++}`, batchId: 'b' }, never).then(() => {
          inFlight--;
          pump();
        });
      }
    };
    pump();
    const t = setInterval(() => {
      pump();
      if (until() || Date.now() > deadline) {
        clearInterval(t);
        if (inFlight === 0) resolve();
      }
    }, 10);
  });
}

describe('UpstreamPool with MAX_WORKERS=auto and vLLM metrics', () => {
  it('steers by the server’s queue: settles a little above its batch size, then follows it down when it shrinks', async () => {
    const s = await fake({ maxNumSeqs: 12, serviceMs: 30 });
    const p = pool([s]);
    await p.start();
    expect(p.status()[0]).toMatchObject({ controller: 'metrics', metrics: { running: 0, waiting: 0, kv_cache_usage: 0 } });
    const seen: number[] = [];
    p.onCapacityChange((n) => seen.push(n));
    // Up from the start (32), the queue appears, the limit settles at 12 + T (4) + in transit —
    // more when this machine is busy: BESH then refills slowly, the server's queue runs dry
    // between samples, and a longer queue is the right answer. Never near the 256 it may reach.
    const t0 = Date.now();
    await drive(p, () => Date.now() - t0 > 1500, 3000);
    expect(seen.length).toBeGreaterThan(0);
    const settled = p.totalLimit;
    expect(settled).toBeGreaterThanOrEqual(14);
    expect(settled).toBeLessThanOrEqual(48);
    // The server is reconfigured to 4 seats: its queue grows, and the limit follows it down.
    s.opts.maxNumSeqs = 4;
    const t1 = Date.now();
    await drive(p, () => Date.now() - t1 > 2000 && p.totalLimit <= 14, 6000);
    expect(p.totalLimit).toBeLessThanOrEqual(14);
    expect(p.totalLimit).toBeGreaterThanOrEqual(5);
    const st = p.status()[0]!;
    expect(st.controller).toBe('metrics');
    expect(st.metrics).not.toBeNull();
  }, 15_000);

  it('falls back to the AdaptiveLimit where GET /metrics is 404 or not Prometheus, and reports no metrics', async () => {
    const none = await fake({ metrics: false });
    const html = await fake({ metricsBody: '<html>hello</html>' });
    const p = pool([none, html]);
    await p.start();
    expect(p.status().map((u) => [u.controller, u.metrics, u.limit])).toEqual([
      ['adaptive', null, 8],
      ['adaptive', null, 8],
    ]);
    expect(p.totalLimit).toBe(16);
  });

  it('goes back to the AdaptiveLimit, at its limit, when a server stops serving metrics', async () => {
    const s = await fake();
    const p = pool([s]);
    await p.start();
    expect(p.status()[0]!.controller).toBe('metrics');
    const limit = p.totalLimit;
    s.opts.metrics = false;
    await p.scrapeMetrics();
    await p.scrapeMetrics();
    expect(p.status()[0]!.controller).toBe('metrics'); // two misses may be a blip
    await p.scrapeMetrics();
    expect(p.status()[0]).toMatchObject({ controller: 'adaptive', metrics: null, limit });
  });

  it('shows the last sample on /health, with a fixed MAX_WORKERS too (controller "fixed")', async () => {
    const s = await fake({ foreignWaiting: 3 });
    const p = pool([s], { maxWorkers: 40 });
    await p.start();
    expect(p.status()[0]).toMatchObject({ controller: 'fixed', limit: 40, metrics: { running: 0, waiting: 3, kv_cache_usage: 0, prefix_cache_hit_rate: null } });
  });

  it('headroom without metrics scales the limit: MAX_WORKERS × (1 − h)', async () => {
    const s = await fake({ metrics: false });
    const p = pool([s, await fake({ metrics: false })], { maxWorkers: 100, headroom: 0.25 });
    expect(p.totalLimit).toBe(75);
    expect(p.status().map((u) => u.limit)).toEqual([75, 75]);
    expect(() => pool([s], { headroom: 0.95 })).toThrow(/headroom/);
  });

  it('headroom with metrics: BESH backs off while others’ requests wait at the server', async () => {
    const s = await fake({ maxNumSeqs: 12, serviceMs: 20 });
    const p = pool([s], { headroom: 0.25 });
    await p.start();
    const t0 = Date.now();
    await drive(p, () => Date.now() - t0 > 1000, 3000);
    const alone = p.totalLimit;
    expect(alone).toBeLessThanOrEqual(12); // ≤ (1 − 0.25) × 12 = 9 once the batch size is known, plus rounding slack
    s.opts.foreignWaiting = 5;
    const t1 = Date.now();
    await drive(p, () => Date.now() - t1 > 1000, 3000);
    expect(p.totalLimit).toBeLessThan(alone);
  }, 10_000);
});

describe('UpstreamPool priority forwarding', () => {
  it('adds "priority" only to the bodies sent to the configured upstreams; others get the body unchanged', async () => {
    const [a, b] = await Promise.all([fake({ serviceMs: 1 }), fake({ serviceMs: 1 })]);
    const p = pool([a, b], { maxWorkers: 8, priorityUpstreams: new Set([`${a.url}/v1/`]) });
    // i ≥ 0: sent with priority i % 3; i < 0: sent without one.
    const bodyOf = (i: number): string => JSON.stringify({ model: 'm', i, messages: [{ role: 'user', content: 'x' }] });
    const sent = Array.from({ length: 30 }, (_, k) => k - 10);
    await Promise.all(sent.map((i) => p.send({ url: '/v1/chat/completions', body: bodyOf(i), customId: `c${i}`, batchId: 'b', ...(i >= 0 ? { priority: i % 3 } : {}) }, never)));
    expect(a.bodies.length).toBeGreaterThan(5);
    expect(b.bodies.length).toBeGreaterThan(5);
    for (const x of a.bodies) {
      const o = JSON.parse(x) as { i: number; priority?: number };
      if (o.i >= 0) expect(x).toBe(`{"priority":${o.i % 3},${bodyOf(o.i).slice(1)}`);
      else expect(x).toBe(bodyOf(o.i));
    }
    // Byte for byte what the caller gave, on the other upstream.
    for (const x of b.bodies) expect(x).toBe(bodyOf((JSON.parse(x) as { i: number }).i));
    expect(a.bodies.some((x) => x.startsWith('{"priority"'))).toBe(true);
  });
});

describe('BESH_UPSTREAM_MAX_SLOWDOWN on a server without the inter-token-latency histogram', () => {
  it('warns once per upstream that the bound has no effect there, and not without the setting', async () => {
    const s = await fake();
    const warned: Array<{ obj: object; msg?: string }> = [];
    const log = { info: () => {}, warn: (obj: object, msg?: string) => void warned.push({ obj, msg }) };
    const bounded = pool([s], { maxSlowdown: 1.5, log });
    await bounded.scrapeMetrics();
    await bounded.scrapeMetrics();
    expect(warned).toHaveLength(1);
    expect(warned[0]!.obj).toEqual({ upstream: `${s.url}/v1` });
    expect(warned[0]!.msg).toMatch(/BESH_UPSTREAM_MAX_SLOWDOWN has no effect/);
    const plain = pool([s], { log });
    await plain.scrapeMetrics();
    expect(warned).toHaveLength(1);
  });
});
