import { afterEach, describe, expect, it } from 'vitest';

import { HashRing } from '../../src/upstream/hash-ring.js';
import type { UpstreamRequest } from '../../src/upstream/upstream-client.js';
import { UpstreamPool, type UpstreamPoolOptions } from '../../src/upstream/upstream-pool.js';
import { type FakeVllm, type FakeVllmOptions, startFakeVllm } from './support/fake-vllm.js';

const toClose: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(toClose.splice(0).map((c) => c.close().catch(() => undefined)));
});

async function servers(n: number, o: Partial<FakeVllmOptions> = {}): Promise<FakeVllm[]> {
  const s = await Promise.all(Array.from({ length: n }, () => startFakeVllm({ maxNumSeqs: 1000, serviceMs: 5, ...o })));
  toClose.push(...s);
  return s;
}

function pool(ss: FakeVllm[], o: Partial<UpstreamPoolOptions> = {}): UpstreamPool {
  const p = new UpstreamPool({
    baseUrls: ss.map((s) => `${s.url}/v1`),
    apiKey: null,
    maxWorkers: 64,
    requestTimeoutMs: 5000,
    maxResponseBytes: 1 << 20,
    healthIntervalMs: 0,
    ejectAfterFailures: 3,
    modelsRefreshMs: 0,
    metricsIntervalMs: 0,
    ...o,
  });
  toClose.push(p);
  return p;
}

const never = new AbortController().signal;
const req = (id: string, prefixKey?: string, extra: Partial<UpstreamRequest> = {}): UpstreamRequest => ({
  url: '/v1/chat/completions',
  body: JSON.stringify({ model: 'm', key: prefixKey ?? null, id, messages: [{ role: 'user', content: 'hi' }] }),
  customId: id,
  batchId: 'batch_t',
  ...(prefixKey === undefined ? {} : { prefixKey }),
  ...extra,
});
/** The prefix keys each server received. */
const keysAt = (s: FakeVllm): string[] => s.bodies.map((b) => (JSON.parse(b) as { key: string }).key);

describe('UpstreamPool prefix affinity', () => {
  it('sends every request with the same prefixKey to the same upstream, and spreads distinct keys', async () => {
    const ss = await servers(4);
    const p = pool(ss);
    const keys = Array.from({ length: 24 }, (_, i) => `prefix-${i}`);
    for (let round = 0; round < 5; round++) {
      for (const k of keys) expect(await p.send(req(`${k}-${round}`, k), never)).toMatchObject({ kind: 'response', status: 200 });
    }
    const home = new Map<string, number>();
    ss.forEach((s, i) => {
      for (const k of keysAt(s)) {
        expect(home.get(k) ?? i).toBe(i); // one upstream per key
        home.set(k, i);
      }
    });
    expect(home.size).toBe(24);
    expect(new Set(home.values()).size).toBeGreaterThanOrEqual(3);
    // The home is the key's owner on the ring of base URLs (what another replica would compute too).
    const ring = new HashRing(ss.map((s) => `${s.url}/v1`));
    for (const [k, i] of home) expect(ring.owner(k)).toBe(i);
  });

  it('without prefixAffinity (or without a key) the same requests are spread by least outstanding', async () => {
    const ss = await servers(4, { serviceMs: 50 });
    const p = pool(ss, { prefixAffinity: false });
    await Promise.all(Array.from({ length: 40 }, (_, i) => p.send(req(`r${i}`, 'one-key'), never)));
    for (const s of ss) expect(s.bodies.length).toBe(10);
    const q = pool(await servers(4, { serviceMs: 50 }));
    await Promise.all(Array.from({ length: 40 }, (_, i) => q.send(req(`r${i}`), never)));
    expect(q.status().map((s) => s.requests)).toEqual([10, 10, 10, 10]);
  });

  it('bounds the load: one hot key fills its upstream to ⌈1.25 × its share⌉, the overflow walks the ring', async () => {
    const ss = await servers(4, { serviceMs: 300 });
    const p = pool(ss);
    const ring = new HashRing(ss.map((s) => `${s.url}/v1`));
    const owner = ring.owner('hot');
    const sends = Array.from({ length: 40 }, (_, i) => p.send(req(`h${i}`, 'hot'), never));
    // All 40 are dispatched before any answer (300 ms): in flight now, as placed.
    const inFlight = p.status().map((s) => s.in_flight);
    expect(inFlight.reduce((a, b) => a + b)).toBe(40);
    expect(inFlight[owner]).toBe(Math.ceil((1.25 * 40) / 4));
    expect(Math.max(...inFlight)).toBeLessThanOrEqual(13);
    const order: number[] = [];
    for (let m = ring.first('hot'); m >= 0; m = ring.next()) order.push(m);
    expect(inFlight[order[1]!]).toBe(13); // the next on the ring took the overflow first
    await Promise.all(sends);
    expect(ss[owner]!.peakOutstanding).toBeLessThanOrEqual(13);
  });

  it('a saturated pool idles no upstream for affinity: the last on the ring still gets requests', async () => {
    const ss = await servers(4, { serviceMs: 200 });
    // MAX_WORKERS 8 over 4 upstreams, all 8 with one key: the bound alone would give 3/3/2/0.
    const p = pool(ss, { maxWorkers: 8 });
    const sends = Array.from({ length: 8 }, (_, i) => p.send(req(`s${i}`, 'hot'), never));
    expect(p.status().every((s) => s.in_flight >= 1)).toBe(true);
    await Promise.all(sends);
  });

  it('sends the retry of a request that failed on its key’s upstream to another one', async () => {
    const ss = await servers(3);
    const ring = new HashRing(ss.map((s) => `${s.url}/v1`));
    const key = Array.from({ length: 100 }, (_, i) => `k${i}`).find((k) => ring.owner(k) === 0)!;
    const p = pool(ss);
    await ss[0]!.close();
    const first = await p.send(req('x', key), never);
    expect(first).toMatchObject({ kind: 'network_error', code: 'connection_error' });
    const again = await p.send(req('x', key), never);
    expect(again).toMatchObject({ kind: 'response', status: 200 });
    // Other requests with that key still prefer their (healthy, as far as the pool knows) owner.
    expect(p.status()[0]!.errors).toBe(1);
  });

  it('routes by req.model when given, without parsing the body', async () => {
    const [a, b] = await Promise.all([startFakeVllm({ maxNumSeqs: 10, serviceMs: 1, models: ['m-a'] }), startFakeVllm({ maxNumSeqs: 10, serviceMs: 1, models: ['m-b'] })]);
    toClose.push(a, b);
    const p = pool([a, b]);
    await p.refreshModels();
    // Not JSON: only `model` can route it. With a prefix key whose owner may be either.
    for (let i = 0; i < 10; i++) {
      await p.send({ url: '/v1/chat/completions', body: `not json ${i}`, customId: `a${i}`, batchId: 'b', model: 'm-a', prefixKey: `k${i}` }, never);
      await p.send({ url: '/v1/chat/completions', body: `not json ${i}`, customId: `b${i}`, batchId: 'b', model: 'm-b' }, never);
    }
    expect(a.bodies).toHaveLength(10);
    expect(b.bodies).toHaveLength(10);
  });
});
