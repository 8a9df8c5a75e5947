import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import type OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const N = 5000;
const WORKERS = 32;

/** Raw text of a file, each line parsed (a torn line would throw here). */
async function linesOf(client: OpenAI, fileId: string | null | undefined): Promise<Array<Record<string, any>>> {
  if (!fileId) return [];
  const text = await (await client.files.content(fileId)).text();
  if (text.length > 0) expect(text.endsWith('\n')).toBe(true);
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, any>;
      } catch {
        throw new Error(`torn or invalid line in ${fileId}: ${l.slice(0, 200)}`);
      }
    });
}

/** Waits until BESH has written at least `n` lines to the batch's output segments on disk. */
async function linesOnDisk(dataDir: string, batchId: string, n: number): Promise<void> {
  const dir = join(dataDir, 'batches', batchId, 'segments');
  const deadline = Date.now() + 10_000;
  for (;;) {
    let count = 0;
    try {
      for (const name of readdirSync(dir)) {
        if (!name.startsWith('output-')) continue;
        for (const ch of readFileSync(join(dir, name), 'utf8')) if (ch === '\n') count++;
      }
    } catch {
      /* not created yet */
    }
    if (count >= n) return;
    if (Date.now() > deadline) throw new Error(`${dir} has ${count} output lines, expected ${n}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Env {
  mock: MockServer;
  dataDir: string;
  env: Record<string, string>;
  track(b: BeshProcess): BeshProcess;
}

async function setup(extra: Record<string, string>): Promise<Env> {
  const mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 5 });
  cleanups.push(() => mock.close());
  const dir = tempDir('besh-engine-crash-');
  cleanups.push(() => dir.remove());
  const env = {
    OPENAI_API_BASE: `${mock.url}/v1`,
    MAX_WORKERS: String(WORKERS),
    BESH_RETRY_BASE_MS: '20',
    BESH_PROGRESS_FLUSH_MS: '100',
    LOG_LEVEL: 'warn',
    ...extra,
  };
  return {
    mock,
    dataDir: dir.path,
    env,
    track: (b) => {
      cleanups.push(() => b.kill());
      return b;
    },
  };
}

/** Checks the finished batch against its files and the mock; returns ids received more than once. */
async function checkComplete(client: OpenAI, id: string, mock: MockServer): Promise<string[]> {
  const done = await waitDone(client, id, 60_000);
  expect(done.status).toBe('completed');
  const output = await linesOf(client, done.output_file_id);
  const errors = await linesOf(client, done.error_file_id);
  expect(errors).toHaveLength(0);
  const all = [...output, ...errors].map((l) => l.custom_id as string);
  expect(all).toHaveLength(N);
  expect(new Set(all).size).toBe(N);
  for (const l of output) expect(l.response.status_code).toBe(200);
  expect(done.request_counts).toEqual({ total: N, completed: output.length, failed: errors.length });
  // usage recomputed from the output file on resume, so it covers every line once
  const sumTokens = output.reduce((s, l) => s + (l.response.body.usage.total_tokens as number), 0);
  expect(done.usage?.total_tokens).toBe(sumTokens);

  const received = mock.stats().received;
  expect(Object.keys(received)).toHaveLength(N);
  return Object.entries(received)
    .filter(([, n]) => n > 1)
    .map(([k]) => k);
}

describe('engine: crash safety', () => {
  it('kill -9 mid-batch, restart on the same data dir: every line exactly once, at most the in-flight ones resent', async () => {
    const s = await setup({});
    const first = s.track(await startBesh(s.env, { dataDir: s.dataDir }));
    const fileId = await upload(first.client, chatLines(N, { prefix: 'k' }));
    const b = await first.client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const mid = await waitFor(first.client, b.id, (x) => x.request_counts!.completed >= N * 0.3, 30_000);
    await first.kill();
    const atKill = s.mock.stats().total_requests;
    expect(mid.request_counts!.completed).toBeLessThan(N * 0.9);
    expect(atKill).toBeLessThan(N);

    const second = s.track(await startBesh(s.env, { dataDir: s.dataDir, port: first.port }));
    const resumed = await second.client.batches.retrieve(b.id);
    expect(['in_progress', 'finalizing', 'completed']).toContain(resumed.status);
    const dup = await checkComplete(second.client, b.id, s.mock);
    expect(dup.length).toBeLessThanOrEqual(WORKERS);
    for (const k of dup) expect(s.mock.stats().received[k]).toBe(2);
    expect(s.mock.stats().total_requests).toBe(N + dup.length);
    expect(second.output()).not.toMatch(/batch runner failed/);
  });

  it('SIGTERM mid-batch exits 0 within the grace period; after restart nothing is sent twice', async () => {
    const graceMs = 5_000;
    const s = await setup({ BESH_SHUTDOWN_GRACE_MS: String(graceMs) });
    const first = s.track(await startBesh(s.env, { dataDir: s.dataDir }));
    const fileId = await upload(first.client, chatLines(N, { prefix: 't' }));
    const b = await first.client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(first.client, b.id, (x) => x.request_counts!.completed >= N * 0.3, 30_000);
    const t0 = Date.now();
    const code = await first.stop();
    const took = Date.now() - t0;
    expect(code).toBe(0);
    expect(took).toBeLessThan(graceMs);
    const atStop = s.mock.stats();
    expect(atStop.in_flight).toBe(0);
    expect(atStop.total_requests).toBeLessThan(N);

    const second = s.track(await startBesh(s.env, { dataDir: s.dataDir, port: first.port }));
    // The batch was left in_progress with its counters saved, not failed or cancelled.
    const resumed = await second.client.batches.retrieve(b.id);
    expect(['in_progress', 'finalizing', 'completed']).toContain(resumed.status);
    expect(resumed.request_counts!.completed).toBeGreaterThanOrEqual(atStop.total_requests);
    const dup = await checkComplete(second.client, b.id, s.mock);
    expect(dup).toEqual([]);
    expect(s.mock.stats().total_requests).toBe(N);
  });
  it('kill -9 while cancelling: the restart finishes the cancel, each line once', async () => {
    const s = await setup({ BESH_SHUTDOWN_GRACE_MS: '60000' });
    const first = s.track(await startBesh(s.env, { dataDir: s.dataDir }));
    const n = 50;
    // Lines 0-3 hang forever, so the cancel cannot settle before the kill.
    const fileId = await upload(first.client, chatLines(n, { prefix: 'x', marker: (i) => (i < 4 ? 'MOCK_HANG' : undefined) }));
    const b = await first.client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(first.client, b.id, (x) => x.request_counts!.completed >= 10, 10_000);
    // Counted lines may still sit in the writer's buffer for a moment: wait until they are on disk.
    await linesOnDisk(s.dataDir, b.id, 10);
    expect((await first.client.batches.cancel(b.id)).status).toBe('cancelling');
    await first.kill();

    const second = s.track(await startBesh(s.env, { dataDir: s.dataDir, port: first.port }));
    const done = await waitDone(second.client, b.id, 10_000);
    expect(done.status).toBe('cancelled');
    expect(done.cancelled_at).toEqual(expect.any(Number));
    const output = await linesOf(second.client, done.output_file_id);
    const errors = await linesOf(second.client, done.error_file_id);
    const all = [...output, ...errors].map((l) => l.custom_id as string);
    expect(all).toHaveLength(n);
    expect(new Set(all).size).toBe(n);
    expect(output.length).toBeGreaterThanOrEqual(10);
    for (const e of errors) expect(e.error.code).toBe('batch_cancelled');
    for (let i = 0; i < 4; i++) expect(errors.map((e) => e.custom_id)).toContain(`x-${i}`);
    expect(done.request_counts).toEqual({ total: n, completed: output.length, failed: errors.length });
    // The restart sent nothing new: the cancelled batch takes no more lines.
    expect(Object.values(s.mock.stats().received).every((c) => c === 1)).toBe(true);
  });

  it('a deadline that passes while BESH is down expires the batch at restart, each line once', async () => {
    const s = await setup({});
    const first = s.track(await startBesh(s.env, { dataDir: s.dataDir }));
    const n = 40;
    const fileId = await upload(first.client, chatLines(n, { prefix: 'z', marker: (i) => (i >= 10 ? 'MOCK_HANG' : undefined) }));
    const b = await first.client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '2s' as '24h' });
    await waitFor(first.client, b.id, (x) => x.request_counts!.completed >= 10, 10_000);
    await linesOnDisk(s.dataDir, b.id, 10);
    await first.kill();
    const wait = b.expires_at! * 1000 - Date.now() + 200;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const before = s.mock.stats().total_requests;

    const second = s.track(await startBesh(s.env, { dataDir: s.dataDir, port: first.port }));
    const done = await waitDone(second.client, b.id, 10_000);
    expect(done.status).toBe('expired');
    expect(done.expired_at).toEqual(expect.any(Number));
    const output = await linesOf(second.client, done.output_file_id);
    const errors = await linesOf(second.client, done.error_file_id);
    expect(output.map((l) => l.custom_id).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `z-${i}`).sort());
    expect(errors).toHaveLength(n - 10);
    for (const e of errors) expect(e.error.code).toBe('batch_expired');
    expect(new Set([...output, ...errors].map((l) => l.custom_id)).size).toBe(n);
    expect(done.request_counts).toEqual({ total: n, completed: 10, failed: n - 10 });
    // Past its deadline, nothing more was sent.
    expect(s.mock.stats().total_requests).toBe(before);
  });
  it('SIGTERM with requests that never answer: aborted after BESH_SHUTDOWN_GRACE_MS, exit 0, resent after restart', async () => {
    const s = await setup({ BESH_SHUTDOWN_GRACE_MS: '500', BESH_MAX_ATTEMPTS: '1', BESH_REQUEST_TIMEOUT_MS: '60000' });
    const first = s.track(await startBesh(s.env, { dataDir: s.dataDir }));
    const n = 20;
    const fileId = await upload(first.client, chatLines(n, { prefix: 'w', marker: (i) => (i < 3 ? 'MOCK_HANG' : undefined) }));
    const b = await first.client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(first.client, b.id, (x) => x.request_counts!.completed === n - 3, 10_000);
    const t0 = Date.now();
    expect(await first.stop()).toBe(0);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(400);
    expect(took).toBeLessThan(3_000);

    // Restart with a short timeout so the hung lines end instead of hanging again.
    const second = s.track(await startBesh({ ...s.env, BESH_REQUEST_TIMEOUT_MS: '300' }, { dataDir: s.dataDir, port: first.port }));
    const done = await waitDone(second.client, b.id, 10_000);
    expect(done.status).toBe('completed');
    const output = await linesOf(second.client, done.output_file_id);
    const errors = await linesOf(second.client, done.error_file_id);
    expect(output).toHaveLength(n - 3);
    expect(errors.map((e) => [e.custom_id, e.error.code]).sort()).toEqual([
      ['w-0', 'request_timeout'],
      ['w-1', 'request_timeout'],
      ['w-2', 'request_timeout'],
    ]);
    expect(done.request_counts).toEqual({ total: n, completed: n - 3, failed: 3 });
    const received = s.mock.stats().received;
    // Only the aborted ones were sent twice.
    expect(Object.entries(received).filter(([, c]) => c > 1).map(([k]) => k).sort()).toEqual(['w-0', 'w-1', 'w-2']);
  });
});
