/**
 * Fair share between projects on a real server (docs/security.md, "Fair share"): MAX_WORKERS
 * slots go round-robin between projects first, then between a project's batches; admission
 * (MAX_CONCURRENT_BATCHES) favours the project with the fewest batches running.
 */
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';

import type { MockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone, waitFor } from '../helpers/batches.js';
import { createKey } from '../helpers/keys.js';
import { stackFactory } from '../helpers/stack.js';

const ADMIN_KEY = 'fair-share-admin-key-0123456789';
const WORKERS = 8;
const LATENCY_MS = 25;

const setup = stackFactory('besh-fair-share-', { BESH_ADMIN_KEY: ADMIN_KEY, MAX_WORKERS: String(WORKERS) });

/** A key for `project`, made with `besh keys create` on the server's data directory while it runs. */
async function projectClient(baseURL: string, dataDir: string, project: string): Promise<OpenAI> {
  return new OpenAI({ baseURL, apiKey: (await createKey(dataDir, project)).key, maxRetries: 0, timeout: 30_000 });
}

async function create(client: OpenAI, jsonl: string) {
  const fileId = await upload(client, jsonl);
  return client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
}

/** Requests the mock received so far, per custom_id prefix (`bigA-17` → `bigA`). */
function receivedByPrefix(mock: MockServer): Map<string, number> {
  const out = new Map<string, number>();
  for (const [key, n] of Object.entries(mock.stats().received)) {
    const prefix = key.replace(/-\d+$/, '');
    out.set(prefix, (out.get(prefix) ?? 0) + n);
  }
  return out;
}

/** The order in which the mock first saw a request of each prefix. */
const firstSeenOrder = (mock: MockServer): string[] => [...new Set(Object.keys(mock.stats().received).map((k) => k.replace(/-\d+$/, '')))];

interface ProjectRow {
  name: string;
  in_flight: number;
  running_batches: number;
}

describe('fair share between projects', () => {
  it('a small project gets half of MAX_WORKERS against a project with three big batches, and finishes long before them', async () => {
    const { mock, besh } = await setup({ latencyMs: LATENCY_MS });
    const admin = new OpenAI({ baseURL: besh.baseURL, apiKey: ADMIN_KEY, maxRetries: 0 });
    const [big, small] = await Promise.all([projectClient(besh.baseURL, besh.dataDir, 'big'), projectClient(besh.baseURL, besh.dataDir, 'small')]);

    // Project big: three batches of 1000 lines (with per-batch round-robin only, the small batch
    // would get a quarter of the slots; per project it gets half).
    const bigBatches = [];
    for (const p of ['bigA', 'bigB', 'bigC']) bigBatches.push(await create(big, chatLines(1000, { prefix: p })));
    for (const b of bigBatches) await waitFor(big, b.id, (x) => x.status === 'in_progress', 15_000);
    await waitFor(big, bigBatches[2]!.id, (x) => x.request_counts!.completed > 0, 15_000);

    // Sample the mock (in this process) and /v1/projects (with the admin key) while small runs.
    let sampling = true;
    const received: Array<{ small: number; big: number }> = [];
    const rows: Array<{ small: number; big: number }> = [];
    const mockSampler = (async () => {
      while (sampling) {
        const r = receivedByPrefix(mock);
        received.push({ small: r.get('small') ?? 0, big: (r.get('bigA') ?? 0) + (r.get('bigB') ?? 0) + (r.get('bigC') ?? 0) });
        await new Promise((res) => setTimeout(res, 3));
      }
    })();
    const apiSampler = (async () => {
      while (sampling) {
        const res = await fetch(`${besh.baseURL}/projects`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
        expect(res.status).toBe(200);
        const data = ((await res.json()) as { data: ProjectRow[] }).data;
        const of = (name: string): ProjectRow | undefined => data.find((p) => p.name === name);
        rows.push({ small: of('small')?.in_flight ?? 0, big: of('big')?.in_flight ?? 0 });
        await new Promise((res) => setTimeout(res, 10));
      }
    })();

    const t0 = performance.now();
    const smallBatch = await create(small, chatLines(40, { prefix: 'small' }));
    const smallDone = await waitDone(small, smallBatch.id, 20_000);
    const smallMs = performance.now() - t0;
    sampling = false;
    await Promise.all([mockSampler, apiSampler]);

    expect(smallDone.status).toBe('completed');
    expect(smallDone.request_counts).toEqual({ total: 40, completed: 40, failed: 0 });
    // The small batch did not wait for the big ones: they are all still running, far from done.
    const bigNow = await Promise.all(bigBatches.map((b) => big.batches.retrieve(b.id)));
    for (const b of bigNow) expect(b.status).toBe('in_progress');
    expect(bigNow.reduce((n, b) => n + b.request_counts!.completed, 0)).toBeLessThan(1500);

    // While small was being sent, big got about as many requests through as small did (each
    // project half of the slots), not three times as many (one batch in four).
    const firstSmall = received.find((s) => s.small > 0)!;
    const allSmall = received.find((s) => s.small >= 40)!;
    expect(firstSmall, 'the sampler saw small start').toBeDefined();
    expect(allSmall, 'the sampler saw all of small sent').toBeDefined();
    const bigMeanwhile = allSmall.big - firstSmall.big;
    expect(bigMeanwhile).toBeGreaterThanOrEqual(20); // big was not starved either
    expect(bigMeanwhile).toBeLessThanOrEqual(75); // ≈ 40 measured; per batch only it would be ≈ 120

    // /v1/projects agrees: while both had requests in flight, small held about half of the slots.
    const both = rows.filter((r) => r.small > 0 && r.big > 0);
    expect(both.length).toBeGreaterThanOrEqual(3);
    for (const r of rows) expect(r.small + r.big).toBeLessThanOrEqual(WORKERS);
    const meanSmall = both.reduce((n, r) => n + r.small, 0) / both.length;
    expect(meanSmall).toBeGreaterThanOrEqual(2.8); // ≈ 3.5 measured; per batch only it would be ≤ 2
    expect(meanSmall).toBeLessThanOrEqual(5);
    // 40 lines at 4 slots × 25 ms ≈ 250 ms of sending; 3000 lines of big at 8 slots would be 9.4 s.
    expect(smallMs).toBeLessThan(3000);

    expect(mock.stats().max_in_flight).toBeLessThanOrEqual(WORKERS);
    // Done: cancel the big batches rather than wait for them.
    for (const b of bigBatches) await big.batches.cancel(b.id);
    for (const b of bigBatches) expect((await waitDone(admin, b.id, 15_000)).status).toBe('cancelled');
  });

  it("MAX_CONCURRENT_BATCHES=1: a small project's batch is admitted before the big project's queued ones", async () => {
    const { mock, besh } = await setup({ latencyMs: LATENCY_MS }, { MAX_CONCURRENT_BATCHES: '1' });
    const [big, small] = await Promise.all([projectClient(besh.baseURL, besh.dataDir, 'big'), projectClient(besh.baseURL, besh.dataDir, 'small')]);

    // big1 runs for ≈ 200 × 25 ms / 8 ≈ 0.6 s: long enough to queue the rest behind it.
    const big1 = await create(big, chatLines(200, { prefix: 'big1' }));
    await waitFor(big, big1.id, (b) => b.status === 'in_progress', 10_000);
    const big2 = await create(big, chatLines(20, { prefix: 'big2' }));
    const big3 = await create(big, chatLines(20, { prefix: 'big3' }));
    const smallBatch = await create(small, chatLines(20, { prefix: 'small' }));
    expect((await big.batches.retrieve(big1.id)).status).toBe('in_progress');
    for (const b of [big2, big3, smallBatch]) expect(b.status).toBe('validating');

    const done = [];
    for (const [c, b] of [[big, big1], [big, big2], [big, big3], [small, smallBatch]] as const) done.push(await waitDone(c, b.id, 20_000));
    for (const b of done) expect(b.status).toBe('completed');
    // One batch at a time, so the order the mock first saw each batch is the admission order:
    // small right after big1 (big has had its turn), then big's queue oldest first.
    expect(firstSeenOrder(mock)).toEqual(['big1', 'small', 'big2', 'big3']);
    expect(mock.stats().total_requests).toBe(260);
  });
});
