import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterEach, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { UpstreamPool, type UpstreamPoolOptions } from '../../src/upstream/upstream-pool.js';

const toClose: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(toClose.splice(0).map((c) => c.close().catch(() => undefined)));
});

async function mock(opts: Parameters<typeof startMockServer>[0] = {}): Promise<MockServer> {
  const m = await startMockServer({ port: 0, ...opts });
  toClose.push(m);
  return m;
}

function pool(urls: string[], o: Partial<UpstreamPoolOptions> = {}): UpstreamPool {
  const p = new UpstreamPool({
    baseUrls: urls.map((u) => `${u}/v1`),
    apiKey: null,
    maxWorkers: 64,
    requestTimeoutMs: 5000,
    maxResponseBytes: 1 << 20,
    healthIntervalMs: 0,
    ejectAfterFailures: 3,
    modelsRefreshMs: 0,
    ...o,
  });
  toClose.push(p);
  return p;
}

const body = (model = 'mock-model'): string => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
const never = new AbortController().signal;
const req = (id: string, model?: string) => ({ url: '/v1/chat/completions', body: body(model), customId: id, batchId: 'batch_t' });
const receivedBy = (m: MockServer): number => Object.values(m.stats().received).reduce((a, b) => a + b, 0);

describe('UpstreamPool', () => {
  it('spreads requests over the upstreams by least outstanding requests', async () => {
    const ms = await Promise.all([0, 1, 2, 3].map(() => mock({ latencyMs: 10 })));
    const p = pool(ms.map((m) => m.url));
    const outcomes = await Promise.all(Array.from({ length: 400 }, (_, i) => p.send(req(`r${i}`), never)));
    expect(outcomes.every((o) => o.kind === 'response' && o.status === 200)).toBe(true);
    for (const m of ms) expect(receivedBy(m)).toBeGreaterThanOrEqual(70);
    const st = p.status();
    expect(st.map((s) => s.requests).reduce((a, b) => a + b)).toBe(400);
    expect(st.every((s) => s.healthy && s.in_flight === 0 && s.limit === 64 && s.latency_ms > 0)).toBe(true);
  });

  it('sends a slow upstream fewer requests', async () => {
    const fast = await mock({ latencyMs: 5 });
    const slow = await mock({ latencyMs: 80 });
    const p = pool([fast.url, slow.url]);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 600) await p.send(req(`r${next++}`), never);
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(receivedBy(fast)).toBeGreaterThan(3 * receivedBy(slow));
  });

  it('discovers models and routes each request only to upstreams serving its model', async () => {
    const a = await mock({ models: ['m-a'] });
    const b = await mock({ models: ['m-b', 'shared'] });
    const c = await mock({ models: ['shared'] });
    const p = pool([a.url, b.url, c.url]);
    expect(p.models()).toBeNull();
    expect(p.servesModel('anything')).toBe(true);
    await p.refreshModels();
    expect([...p.models()!].sort()).toEqual(['m-a', 'm-b', 'shared']);
    expect(p.servesModel('m-a')).toBe(true);
    expect(p.servesModel('nope')).toBe(false);
    const os = await Promise.all([
      ...Array.from({ length: 30 }, (_, i) => p.send(req(`a${i}`, 'm-a'), never)),
      ...Array.from({ length: 30 }, (_, i) => p.send(req(`b${i}`, 'm-b'), never)),
      ...Array.from({ length: 40 }, (_, i) => p.send(req(`s${i}`, 'shared'), never)),
    ]);
    expect(os.every((o) => o.kind === 'response' && o.status === 200)).toBe(true);
    expect(Object.keys(a.stats().received).every((k) => k.startsWith('a'))).toBe(true);
    expect(Object.keys(a.stats().received)).toHaveLength(30);
    expect(Object.keys(c.stats().received).every((k) => k.startsWith('s'))).toBe(true);
    expect(Object.keys(b.stats().received).filter((k) => k.startsWith('b'))).toHaveLength(30);
  });

  it('models() stays null while no upstream answers GET /v1/models', async () => {
    const p = pool(['http://127.0.0.1:9']);
    await p.refreshModels();
    expect(p.models()).toBeNull();
  });

  it('retries a failed request on another upstream and ejects one that keeps failing, re-admitting it once probes pass', async () => {
    const live = await mock();
    const dying = await mock();
    const port = dying.port;
    const p = pool([dying.url, live.url], { healthIntervalMs: 60_000 });
    await dying.close();
    // Retries of a request that failed on the dead upstream go to the live one.
    for (let i = 0; i < 20; i++) {
      const first = await p.send(req(`x${i}`), never);
      if (first.kind === 'response') continue;
      expect(first).toMatchObject({ kind: 'network_error', code: 'connection_error' });
      const again = await p.send(req(`x${i}`), never);
      expect(again).toMatchObject({ kind: 'response', status: 200 });
    }
    const dead = p.status()[0]!;
    expect(dead.healthy).toBe(false);
    expect(dead.errors).toBe(3);
    // Once ejected, nothing more goes there.
    const os = await Promise.all(Array.from({ length: 50 }, (_, i) => p.send(req(`y${i}`), never)));
    expect(os.every((o) => o.kind === 'response' && o.status === 200)).toBe(true);
    expect(p.status()[0]!.errors).toBe(3);
    // Back on the same port: the next probe re-admits it.
    const back = await mock({ port });
    await p.checkHealth();
    expect(p.status()[0]!.healthy).toBe(true);
    await Promise.all(Array.from({ length: 40 }, (_, i) => p.send(req(`z${i}`), never)));
    expect(receivedBy(back)).toBeGreaterThan(5);
  });

  it('takes an upstream whose /health fails twice out of rotation', async () => {
    let healthy = true;
    const srv: Server = createServer((rq, rs) => {
      rs.writeHead(rq.url === '/health' && !healthy ? 503 : 200, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    toClose.push({ close: () => new Promise<void>((r) => srv.close(() => r())) });
    const other = await mock();
    const p = pool([`http://127.0.0.1:${(srv.address() as AddressInfo).port}`, other.url], { healthIntervalMs: 60_000 });
    await p.checkHealth();
    expect(p.status()[0]!.healthy).toBe(true);
    healthy = false;
    await p.checkHealth();
    expect(p.status()[0]!.healthy).toBe(true);
    await p.checkHealth();
    expect(p.status()[0]!.healthy).toBe(false);
    healthy = true;
    await p.checkHealth();
    expect(p.status()[0]!.healthy).toBe(true);
  });

  it('with one upstream, keeps sending to it even when it fails (the engine retries and backs off)', async () => {
    const p = pool(['http://127.0.0.1:9'], { healthIntervalMs: 60_000 });
    for (let i = 0; i < 5; i++) expect(await p.send(req('a'), never)).toMatchObject({ kind: 'network_error', code: 'connection_error' });
  });

  it('MAX_WORKERS=auto: starts each upstream at 8 and reports the sum of the healthy ones', async () => {
    // 100 ms: scheduling noise on a loaded runner stays small next to the latency slow start watches
    // (at 40 ms, one stalled answer among the first could end slow start below 16).
    const ms = await Promise.all([0, 1].map(() => mock({ latencyMs: 100, capacity: 32 })));
    const p = pool(ms.map((m) => m.url), { maxWorkers: 'auto', autoMaxPerUpstream: 256 });
    expect(p.totalLimit).toBe(16);
    const seen: number[] = [];
    p.onCapacityChange((n) => seen.push(n));
    // Keep the limit busy for a while, as the engine does: it should grow. A completion or a new
    // limit wakes the loop (polling with timers would load the event loop that the latency is
    // measured on).
    let wake = (): void => undefined;
    const woken = (): Promise<void> => new Promise((r) => (wake = r));
    p.onCapacityChange(() => wake());
    const sending = new Set<Promise<unknown>>();
    let next = 0;
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline) {
      while (sending.size < p.totalLimit) {
        const s = p.send(req(`r${next++}`), never).finally(() => {
          sending.delete(s);
          wake();
        });
        sending.add(s);
      }
      await woken();
    }
    await Promise.all(sending);
    // It grew while the mocks kept up. Where it ends depends on this machine's load (a busy CI
    // runner's latency can put the knee below the start), so the final value is not asserted.
    expect(seen.length).toBeGreaterThan(0);
    expect(Math.max(...seen)).toBeGreaterThan(16);
    expect(p.totalLimit).toBe(seen.at(-1));
  });
});
