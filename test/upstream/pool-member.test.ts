import { describe, expect, it } from 'vitest';

import { adaptiveWithHeadroom, PoolMember } from '../../src/upstream/pool-member.js';
import type { MetricsSample } from '../../src/upstream/server-metrics.js';
import { UpstreamClient } from '../../src/upstream/upstream-client.js';

const client = (): UpstreamClient => new UpstreamClient({ baseUrl: 'http://127.0.0.1:9/v1', apiKey: null, connections: 1, requestTimeoutMs: 1000, maxResponseBytes: 1000 });
const sample = (running: number, waiting: number, more: Partial<MetricsSample> = {}): MetricsSample => ({
  running,
  waiting,
  kvUsage: 0.2,
  prefixQueries: null,
  prefixHits: null,
  preemptions: null,
  generationTokens: null,
  prefixHitRate: null,
  ...more,
});

describe('PoolMember controllers', () => {
  it('auto: AdaptiveLimit until a scrape has figures, then the load signal from at least 32; back after 3 scrapes without', () => {
    const m = new PoolMember('u', client(), { auto: true, maxWorkers: 256, headroom: 0 });
    expect([m.controller, m.limit]).toEqual(['adaptive', 8]);
    expect(m.absorbMetrics(null)).toBe(false);
    expect(m.controller).toBe('adaptive');
    m.absorbMetrics(sample(0, 0));
    expect([m.controller, m.limit]).toEqual(['metrics', 32]);
    // Overload answers reach the load signal at its next sample.
    m.recordOutcome(10, 1, true);
    m.absorbMetrics(sample(0, 0));
    expect(m.limit).toBe(22);
    m.absorbMetrics(null);
    m.absorbMetrics(null);
    expect(m.controller).toBe('metrics');
    m.absorbMetrics(null);
    expect([m.controller, m.limit, m.status().metrics]).toEqual(['adaptive', 22, null]);
    m.absorbMetrics(sample(3, 0));
    expect([m.controller, m.limit]).toEqual(['metrics', 32]);
  });

  it('fixed: keeps MAX_WORKERS × (1 − headroom) and only shows the figures', () => {
    const m = new PoolMember('u', client(), { auto: false, maxWorkers: 64, headroom: 0.5 });
    m.absorbMetrics(sample(500, 900, { prefixQueries: 0, prefixHits: 0 }));
    m.absorbMetrics(sample(500, 900, { prefixQueries: 1000, prefixHits: 250 }));
    expect(m.status()).toMatchObject({ controller: 'fixed', limit: 32, metrics: { running: 500, waiting: 900, kv_cache_usage: 0.2, prefix_cache_hit_rate: 0.25 } });
  });

  it('adaptive with headroom: the full limit while it looks for the knee, (1 − h) of it once found', () => {
    const m = new PoolMember('u', client(), { auto: true, maxWorkers: 256, headroom: 0.5, adaptive: { initial: 40 } });
    expect(m.limit).toBe(40); // slow start: full
    expect(adaptiveWithHeadroom(40, 'climb', 0.5)).toBe(40);
    expect(adaptiveWithHeadroom(40, 'hold', 0.5)).toBe(20);
    expect(adaptiveWithHeadroom(40, 'probe_up', 0.25)).toBe(30);
    expect(adaptiveWithHeadroom(1, 'hold', 0.9)).toBe(1);
    expect(adaptiveWithHeadroom(40, 'hold', 0)).toBe(40);
  });
});
