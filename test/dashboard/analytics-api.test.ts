import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';

let mock: MockServer;
let besh: BeshProcess;
let client: OpenAI;
let dir: { path: string; remove(): void };

/** Known data: three uploads and batches; the first two give 12 ok + 3 failed requests, the third 2 ok. */
const known = { uploads: 3, uploadBytes: 0, completed: 12, failed: 3, inputTokens: 0, outputTokens: 0, batchIds: [] as string[] };

const get = async (path: string): Promise<{ status: number; headers: Headers; body: any }> => {
  const r = await fetch(`${besh.url}${path}`);
  return { status: r.status, headers: r.headers, body: await r.json() };
};

/** Counts reach the store within a flush (~2 s); the API adds unflushed counts, so this is quick. */
async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 5 });
  dir = tempDir();
  besh = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, LOG_LEVEL: 'warn', MAX_CONCURRENT_BATCHES: '1', BESH_SHUTDOWN_GRACE_MS: '300' }, { dataDir: dir.path });
  client = besh.client;
  const inputs = [chatLines(10, { prefix: 'a' }), chatLines(5, { prefix: 'b', marker: (i) => (i < 3 ? 'MOCK_FAIL_400' : undefined) })];
  for (const text of inputs) {
    const id = await upload(client, text);
    known.uploadBytes += (await client.files.retrieve(id)).bytes;
    const b = await client.batches.create({ input_file_id: id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitDone(client, b.id);
    expect(done.status).toBe('completed');
    known.inputTokens += done.usage?.input_tokens ?? 0;
    known.outputTokens += done.usage?.output_tokens ?? 0;
    known.batchIds.push(b.id);
  }
  // A third, small batch: three created, three finished.
  const third = await upload(client, chatLines(2, { prefix: 'c' }));
  known.uploadBytes += (await client.files.retrieve(third)).bytes;
  const c = await client.batches.create({ input_file_id: third, endpoint: '/v1/chat/completions', completion_window: '24h' });
  known.batchIds.push(c.id);
  await waitDone(client, c.id);
});

afterAll(async () => {
  await besh?.stop();
  await mock?.close();
  dir?.remove();
});

const sum = (rows: any[], key: string): number => rows.reduce((a, r) => a + (r[key] as number), 0);

describe('analytics API', () => {
  it('timeline: batches created, requests and uploads per 15 min over 24 h', async () => {
    const { status, headers, body } = await eventually(
      () => get('/v1/batches/analytics/timeline'),
      (r) => sum(r.body.data, 'requests_completed') >= known.completed + 2,
    );
    expect(status).toBe(200);
    expect(headers.get('content-type')).toMatch(/^application\/json/);
    expect(body.object).toBe('analytics.timeline');
    expect(body.interval_seconds).toBe(900);
    expect(body.data).toHaveLength(96);
    expect(body.end - body.start).toBe(24 * 3600);
    body.data.forEach((p: any, i: number) => expect(p.timestamp).toBe(body.start + i * 900));
    expect(sum(body.data, 'batches_created')).toBe(3);
    expect(sum(body.data, 'requests_completed')).toBe(known.completed + 2);
    expect(sum(body.data, 'requests_failed')).toBe(known.failed);
    expect(sum(body.data, 'uploads')).toBe(known.uploads);
    expect(sum(body.data, 'upload_bytes')).toBe(known.uploadBytes);
    // Everything happened just now: in the last bucket (or the one before, across a boundary).
    const recent = body.data.slice(-2);
    expect(sum(recent, 'batches_created')).toBe(3);
    expect((await get('/v1/batches/analytics/timeline?hours=2')).body.data).toHaveLength(8);
    expect((await get('/v1/batches/analytics/timeline?hours=0')).body.error.code).toBe('invalid_value');
  });

  it('tokens: input/output tokens and durations per 15 min', async () => {
    const { body } = await get('/v1/batches/analytics/tokens');
    expect(body.object).toBe('analytics.tokens');
    expect(body.data).toHaveLength(96);
    expect(known.inputTokens).toBeGreaterThan(0);
    expect(sum(body.data, 'input_tokens')).toBeGreaterThanOrEqual(known.inputTokens);
    expect(sum(body.data, 'output_tokens')).toBeGreaterThanOrEqual(known.outputTokens);
    expect(sum(body.data, 'requests')).toBe(known.completed + known.failed + 2);
    expect(sum(body.data, 'batches_finished')).toBe(3);
    const busy = body.data.filter((p: any) => p.requests > 0);
    for (const p of busy) expect(p.avg_latency_ms).toBeGreaterThan(0);
  });

  it('live: requests and tokens per minute and the engine panel', async () => {
    const { body } = await get('/v1/batches/analytics/live');
    expect(body.object).toBe('analytics.live');
    expect(body.interval_seconds).toBe(60);
    expect(body.data).toHaveLength(60);
    expect(sum(body.data, 'requests_completed')).toBe(known.completed + 2);
    expect(sum(body.data, 'requests_failed')).toBe(known.failed);
    const last = body.data.filter((p: any) => p.requests_completed > 0);
    for (const p of last) expect(p.requests_per_second).toBeCloseTo((p.requests_completed + p.requests_failed) / 60, 1);
    expect(body.engine).toMatchObject({ state: 'running', in_flight: 0, max_workers: 128, utilisation: 0, active_batches: 0, queue: [] });
  });

  it('token_usage of one batch', async () => {
    const id = known.batchIds[0]!;
    const b = await client.batches.retrieve(id);
    const { status, body } = await get(`/v1/batches/${id}/token_usage`);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      object: 'batch.token_usage',
      batch_id: id,
      status: 'completed',
      request_counts: { total: 10, completed: 10, failed: 0 },
      input_tokens: b.usage!.input_tokens,
      output_tokens: b.usage!.output_tokens,
      total_tokens: b.usage!.total_tokens,
      eta_seconds: null,
    });
    const missing = await get('/v1/batches/batch_doesnotexist/token_usage');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('batch_not_found');
  });

  it('dashboard: paged list with error rates and tokens, filter, summary', async () => {
    const { status, body } = await get('/v1/batches/dashboard?limit=2');
    expect(status).toBe(200);
    expect(body).toMatchObject({ object: 'dashboard', page: 1, limit: 2, total: 3, has_more: true });
    expect(body.data.map((b: any) => b.id)).toEqual([known.batchIds[2], known.batchIds[1]]);
    const withErrors = body.data[1];
    expect(withErrors.error_rate).toBeCloseTo(3 / 5, 4);
    expect(withErrors.progress).toBe(1);
    expect(withErrors.input_tokens).toBeGreaterThan(0);
    expect(withErrors.elapsed_seconds).toBeGreaterThanOrEqual(0);
    const page2 = (await get('/v1/batches/dashboard?limit=2&page=2')).body;
    expect(page2.data.map((b: any) => b.id)).toEqual([known.batchIds[0]]);
    expect(page2.has_more).toBe(false);
    expect((await get('/v1/batches/dashboard?status=completed')).body.total).toBe(3);
    expect((await get('/v1/batches/dashboard?status=failed')).body).toMatchObject({ total: 0, data: [] });
    expect((await get('/v1/batches/dashboard?status=nope')).body.error).toMatchObject({ code: 'invalid_value', param: 'status' });

    const s = body.summary;
    expect(s.batches_by_status).toMatchObject({ completed: 3, failed: 0, in_progress: 0 });
    expect(s).toMatchObject({ requests_completed: known.completed + 2, requests_failed: known.failed, uploads: known.uploads, batches_finished: 3, batches_created: 3 });
    expect(s.error_rate).toBeCloseTo(known.failed / (known.completed + 2 + known.failed), 3);
    expect(s.input_tokens).toBeGreaterThanOrEqual(known.inputTokens);
    expect(s.avg_batch_duration_seconds).toBeGreaterThanOrEqual(0);
    expect(body.engine.max_workers).toBe(128);
  });

  it('the routes are not taken for batch ids', async () => {
    // /v1/batches/status belongs to another route; make sure ours did not swallow it either.
    for (const p of ['/v1/batches/dashboard', '/v1/batches/analytics/timeline', '/v1/batches/analytics/tokens']) {
      const r = await get(p);
      expect(r.status, p).toBe(200);
      expect(r.body.object, p).not.toBe('batch');
    }
  });

  it('counters survive a restart (flushed to the store, per minute)', async () => {
    const before = (await get('/v1/batches/analytics/timeline')).body;
    await besh.stop();
    besh = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, LOG_LEVEL: 'warn' }, { dataDir: dir.path });
    const after = (await get('/v1/batches/analytics/timeline')).body;
    for (const k of ['batches_created', 'requests_completed', 'requests_failed', 'uploads', 'upload_bytes']) expect(sum(after.data, k), k).toBe(sum(before.data, k));
  });

  it('GET /v1/events streams server-sent events with engine ticks', async () => {
    const ac = new AbortController();
    const r = await fetch(`${besh.url}/v1/events`, { signal: ac.signal });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!text.includes('event: engine')) text += (await reader.read()).value ?? '';
    const data = /event: engine\ndata: (.*)\n/.exec(text)![1]!;
    expect(JSON.parse(data)).toMatchObject({ state: 'running', in_flight: 0 });
    ac.abort();
  });
});
