import type OpenAI from 'openai';
import { describe, expect, it } from 'vitest';

import { chatLines, readJsonl, upload, waitDone, waitFor } from '../helpers/batches.js';
import { stackFactory } from '../helpers/stack.js';

const setup = stackFactory('besh-engine-cancel-');

async function create(client: OpenAI, jsonl: string, completionWindow = '24h') {
  const fileId = await upload(client, jsonl);
  return client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: completionWindow as '24h' });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every input custom_id exactly once across the two files. */
function expectEachOnce(output: Array<Record<string, any>>, errors: Array<Record<string, any>>, prefix: string, n: number): void {
  const all = [...output, ...errors].map((l) => l.custom_id as string);
  expect(all).toHaveLength(n);
  expect(new Set(all).size).toBe(n);
  for (let i = 0; i < n; i++) expect(all).toContain(`${prefix}-${i}`);
}

describe('engine: cancel', () => {
  it('cancel mid-way: cancelling → cancelled, partial output, batch_cancelled for the rest, upstream goes quiet', async () => {
    const { mock, client } = await setup({ latencyMs: 200 }, { MAX_WORKERS: '4' });
    const b = await create(client, chatLines(200, { prefix: 'c' }));
    await waitFor(client, b.id, (x) => x.status === 'in_progress' && x.request_counts!.completed >= 8, 30_000);

    const cancelling = await client.batches.cancel(b.id);
    expect(cancelling.status).toBe('cancelling');
    expect(cancelling.cancelling_at).toEqual(expect.any(Number));
    expect(cancelling.cancelled_at).toBeNull();
    // Cancelling twice answers the batch as it is.
    expect(['cancelling', 'cancelled']).toContain((await client.batches.cancel(b.id)).status);

    const done = await waitDone(client, b.id, 30_000);
    expect(done.status).toBe('cancelled');
    expect(done.cancelling_at).toEqual(expect.any(Number));
    expect(done.cancelled_at).toEqual(expect.any(Number));
    expect(done.cancelled_at!).toBeGreaterThanOrEqual(done.cancelling_at!);
    expect(done.completed_at).toBeNull();

    const output = await readJsonl(client, done.output_file_id);
    const errors = await readJsonl(client, done.error_file_id);
    expect(output.length).toBeGreaterThanOrEqual(8);
    expect(output.length).toBeLessThan(100);
    for (const l of output) expect(l.response.status_code).toBe(200);
    for (const e of errors) {
      expect(e.response).toBeNull();
      expect(e.error.code).toBe('batch_cancelled');
      expect(typeof e.error.message).toBe('string');
    }
    expectEachOnce(output, errors, 'c', 200);
    const rc = done.request_counts!;
    expect(rc.total).toBe(200);
    expect(rc.completed).toBe(output.length);
    expect(rc.failed).toBe(errors.length);
    expect(rc.completed + rc.failed).toBe(rc.total);

    // Requests let in flight at cancel finished (they are in the output), none was sent after.
    const st = mock.stats();
    expect(st.total_requests).toBe(output.length);
    await sleep(1000);
    expect(mock.stats().total_requests).toBe(st.total_requests);
    // Nothing written after the end either.
    const again = await client.batches.retrieve(b.id);
    expect(again.status).toBe('cancelled');
    expect(again.request_counts).toEqual(rc);
  });

  it('cancel while queued behind another batch: cancelled at once, never sent upstream', async () => {
    const { mock, client } = await setup({ latencyMs: 100 }, { MAX_WORKERS: '2', MAX_CONCURRENT_BATCHES: '1' });
    const first = await create(client, chatLines(30, { prefix: 'first' }));
    await waitFor(client, first.id, (x) => x.status === 'in_progress');
    const queued = await create(client, chatLines(10, { prefix: 'queued' }));
    const before = await client.batches.retrieve(queued.id);
    expect(before.status).toBe('validating');
    expect((before as any).queue_position).toBe(1);

    const cancelled = await client.batches.cancel(queued.id);
    expect(['cancelling', 'cancelled']).toContain(cancelled.status);
    expect(cancelled.cancelling_at).toEqual(expect.any(Number));
    const end = await waitDone(client, queued.id, 5_000);
    expect(end.status).toBe('cancelled');
    expect(end.cancelled_at).toEqual(expect.any(Number));
    expect(end.in_progress_at).toBeNull();
    expect((end as any).queue_position).toBeNull();

    const firstDone = await waitDone(client, first.id, 30_000);
    expect(firstDone.status).toBe('completed');
    await sleep(300);
    const received = Object.keys(mock.stats().received);
    expect(received.filter((k) => k.startsWith('queued-'))).toEqual([]);
    expect(received).toHaveLength(30);
    // It stays cancelled after the engine admitted the next batches.
    expect((await client.batches.retrieve(queued.id)).status).toBe('cancelled');
    // A finished batch cannot be cancelled.
    await expect(client.batches.cancel(first.id)).rejects.toMatchObject({ status: 409 });
  });
});

describe('engine: cancel grace and delete', () => {
  it('requests still in flight when the cancel grace period ends are aborted and reported batch_cancelled', async () => {
    // cancel grace = min(BESH_SHUTDOWN_GRACE_MS, BESH_REQUEST_TIMEOUT_MS)
    const { mock, client } = await setup({ latencyMs: 1 }, { MAX_WORKERS: '4', BESH_SHUTDOWN_GRACE_MS: '400' });
    const b = await create(client, chatLines(12, { prefix: 'g', marker: (i) => (i >= 2 && i < 6 ? 'MOCK_HANG' : undefined) }));
    // Lines 0–1 answer, 2–5 hang and hold all 4 workers; 6–11 wait for a slot.
    await waitFor(client, b.id, (x) => x.request_counts!.completed === 2 && Object.keys(mock.stats().received).length === 6, 10_000);
    await sleep(100);
    expect((await client.batches.retrieve(b.id)).request_counts!.completed).toBe(2);
    const t0 = Date.now();
    await client.batches.cancel(b.id);
    const done = await waitDone(client, b.id, 10_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(done.status).toBe('cancelled');
    const output = await readJsonl(client, done.output_file_id);
    const errors = await readJsonl(client, done.error_file_id);
    expect(output.map((l) => l.custom_id).sort()).toEqual(['g-0', 'g-1']);
    expect(errors.every((e) => e.error.code === 'batch_cancelled')).toBe(true);
    expectEachOnce(output, errors, 'g', 12);
    expect(done.request_counts).toEqual({ total: 12, completed: 2, failed: 10 });
    expect(Object.keys(mock.stats().received).sort()).toEqual(['g-0', 'g-1', 'g-2', 'g-3', 'g-4', 'g-5']);
  });

  it('deleting a running batch stops it: no more upstream calls, 404 afterwards', async () => {
    const { mock, besh, client } = await setup({ latencyMs: 100 }, { MAX_WORKERS: '2' });
    const b = await create(client, chatLines(100, { prefix: 'd' }));
    await waitFor(client, b.id, (x) => x.request_counts!.completed >= 2, 10_000);
    const res = await fetch(`${besh.baseURL}/batches/${b.id}`, { method: 'DELETE', headers: { authorization: 'Bearer test-key' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: b.id, object: 'batch', deleted: true });
    await expect(client.batches.retrieve(b.id)).rejects.toMatchObject({ status: 404 });
    const st = mock.stats().total_requests;
    expect(st).toBeLessThan(20);
    await sleep(500);
    expect(mock.stats().total_requests).toBe(st);
  });
});

describe('engine: expiry', () => {
  it('a batch past its completion window ends expired: done lines in the output, the rest batch_expired', async () => {
    const { mock, client } = await setup({ latencyMs: 400 }, { MAX_WORKERS: '2' });
    const b = await create(client, chatLines(40, { prefix: 'e' }), '3s');
    expect(b.expires_at).toBe(b.created_at + 3);

    const done = await waitDone(client, b.id, 20_000);
    expect(done.status).toBe('expired');
    expect(done.expired_at).toEqual(expect.any(Number));
    expect(done.expired_at!).toBeGreaterThanOrEqual(done.expires_at!);
    expect(done.completed_at).toBeNull();

    const output = await readJsonl(client, done.output_file_id);
    const errors = await readJsonl(client, done.error_file_id);
    // 2 workers × 400 ms for ≤ 3 s: a handful done, most not.
    expect(output.length).toBeGreaterThan(0);
    expect(output.length).toBeLessThan(20);
    for (const l of output) expect(l.response.status_code).toBe(200);
    expect(errors.length).toBeGreaterThan(20);
    for (const e of errors) {
      expect(e.response).toBeNull();
      expect(e.error).toEqual({ code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' });
    }
    expectEachOnce(output, errors, 'e', 40);
    expect(done.request_counts).toEqual({ total: 40, completed: output.length, failed: errors.length });

    const st = mock.stats().total_requests;
    await sleep(800);
    expect(mock.stats().total_requests).toBe(st);
  });

  it('a batch still queued when its window passes ends expired without being sent', async () => {
    const { mock, client } = await setup({ latencyMs: 200 }, { MAX_WORKERS: '2', MAX_CONCURRENT_BATCHES: '1' });
    const first = await create(client, chatLines(30, { prefix: 'long' }));
    await waitFor(client, first.id, (x) => x.status === 'in_progress');
    const queued = await create(client, chatLines(5, { prefix: 'late' }), '1s');
    const end = await waitDone(client, queued.id, 10_000);
    expect(end.status).toBe('expired');
    expect(end.expired_at).toEqual(expect.any(Number));
    expect(Object.keys(mock.stats().received).filter((k) => k.startsWith('late-'))).toEqual([]);
    await client.batches.cancel(first.id);
    expect((await waitDone(client, first.id, 10_000)).status).toBe('cancelled');
  });
});
