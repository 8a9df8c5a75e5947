import type OpenAI from 'openai';
import { describe, expect, it,onTestFinished } from 'vitest';

import { startMockServer } from '../../src/mock/index.js';
import { chatLines, readJsonl, upload, waitDone } from '../helpers/batches.js';
import { startBesh, tempDir } from '../helpers/besh-process.js';
import { stackFactory } from '../helpers/stack.js';

/** Every process, mock and directory this file starts, torn down in afterAll. */
const makeStack = stackFactory('besh-engine-retry-', { BESH_RETRY_MAX_MS: '200' });
const setup = (mockOpts: Parameters<typeof makeStack>[0] = {}, env: Record<string, string> = {}) => makeStack({ seed: 7, ...mockOpts }, env);

async function runBatch(client: OpenAI, jsonl: string, timeoutMs = 60_000) {
  const fileId = await upload(client, jsonl);
  const created = await client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
  const batch = await waitDone(client, created.id, timeoutMs);
  const output = await readJsonl(client, batch.output_file_id);
  const errors = await readJsonl(client, batch.error_file_id);
  return { batch, output, errors };
}

const ids = (lines: Array<Record<string, any>>): string[] => lines.map((l) => l.custom_id as string);

describe('engine: retries and request-level failures', () => {
  it('retries 429s, 500s and dropped connections until every request of a 300-line batch succeeds exactly once', async () => {
    const { mock, client } = await setup(
      { latencyMs: 2, fail429Rate: 0.3, fail500Rate: 0.3, dropRate: 0.3, maxFaultsPerRequest: 2, retryAfterSeconds: 0 },
      { BESH_MAX_ATTEMPTS: '5', MAX_WORKERS: '16' },
    );
    const { batch, output, errors } = await runBatch(client, chatLines(300, { prefix: 'r' }));

    expect(batch.status).toBe('completed');
    expect(batch.error_file_id).toBeNull();
    expect(errors).toHaveLength(0);
    expect(output).toHaveLength(300);
    expect(new Set(ids(output)).size).toBe(300);
    for (let i = 0; i < 300; i++) expect(ids(output)).toContain(`r-${i}`);
    for (const l of output) {
      expect(l.error).toBeNull();
      expect(l.response.status_code).toBe(200);
      expect(l.response.body.object).toBe('chat.completion');
    }
    expect(batch.request_counts).toEqual({ total: 300, completed: 300, failed: 0 });

    const st = mock.stats();
    const counts = Object.values(st.received);
    expect(Object.keys(st.received)).toHaveLength(300);
    const retried = counts.filter((n) => n > 1).length;
    // Each request fails ~66% of the time on its first try (three 0.3 draws), at most twice.
    expect(retried).toBeGreaterThan(100);
    expect(Math.max(...counts)).toBe(3);
    expect(st.faults[429]).toBeGreaterThan(0);
    expect(st.faults[500]).toBeGreaterThan(0);
    expect(st.faults.drop).toBeGreaterThan(0);
    // Every attempt is counted once; the attempts that were not faulted are exactly the 300 successes.
    expect(st.total_requests).toBe(counts.reduce((a, b) => a + b, 0));
    expect(st.total_requests - st.faults[429] - st.faults[500] - st.faults.drop).toBe(300);
  });

  it('honours Retry-After on 429 (1 s) instead of the short backoff', async () => {
    const { mock, client } = await setup({ fail429Rate: 1, maxFaultsPerRequest: 1, retryAfterSeconds: 1 }, { BESH_MAX_ATTEMPTS: '5', MAX_WORKERS: '4' });
    const started = Date.now();
    const { batch, output, errors } = await runBatch(client, chatLines(4, { prefix: 'ra' }));
    const elapsed = Date.now() - started;

    expect(batch.status).toBe('completed');
    expect(errors).toHaveLength(0);
    expect(new Set(ids(output)).size).toBe(4);
    const st = mock.stats();
    expect(st.faults[429]).toBe(4);
    expect(Object.values(st.received)).toEqual([2, 2, 2, 2]);
    // The backoff alone (BESH_RETRY_BASE_MS=20) would retry after ≤ 20 ms.
    expect(elapsed).toBeGreaterThanOrEqual(950);
  });

  it('a 400 is final: straight to the error file after exactly one attempt; retryable ones still succeed', async () => {
    const { mock, client } = await setup({ latencyMs: 1 }, { BESH_MAX_ATTEMPTS: '4', MAX_WORKERS: '8' });
    const bad = new Set([3, 7, 11]);
    const { batch, output, errors } = await runBatch(client, chatLines(20, { prefix: 'b', marker: (i) => (bad.has(i) ? 'MOCK_FAIL_400' : undefined) }));

    expect(batch.status).toBe('completed');
    expect(batch.request_counts).toEqual({ total: 20, completed: 17, failed: 3 });
    expect(output).toHaveLength(17);
    expect(errors).toHaveLength(3);
    expect(ids(errors).sort()).toEqual(['b-11', 'b-3', 'b-7']);
    for (const e of errors) {
      expect(e.error).toBeNull();
      expect(e.response.status_code).toBe(400);
      expect(e.response.body.error.code).toBe('mock_fail');
      expect(e.id).toMatch(/^batch_req_/);
    }
    const received = mock.stats().received;
    for (const i of bad) expect(received[`b-${i}`]).toBe(1);
    expect(Object.values(received).every((n) => n === 1)).toBe(true);
  });

  it('gives up after BESH_MAX_ATTEMPTS on permanent 500s and writes the last 500 to the error file', async () => {
    const { mock, client } = await setup({ fail500Rate: 1 }, { BESH_MAX_ATTEMPTS: '3', MAX_WORKERS: '4' });
    const { batch, output, errors } = await runBatch(client, chatLines(5, { prefix: 'p' }));

    // Every request failed: OpenAI still ends the batch `completed`, with no output file.
    expect(batch.status).toBe('completed');
    expect(batch.output_file_id).toBeNull();
    expect(output).toHaveLength(0);
    expect(batch.request_counts).toEqual({ total: 5, completed: 0, failed: 5 });
    expect(ids(errors).sort()).toEqual(['p-0', 'p-1', 'p-2', 'p-3', 'p-4']);
    for (const e of errors) {
      expect(e.error).toBeNull();
      expect(e.response.status_code).toBe(500);
      expect(e.response.body.error.type).toBe('server_error');
    }
    const received = mock.stats().received;
    expect(Object.keys(received)).toHaveLength(5);
    for (const n of Object.values(received)) expect(n).toBe(3);
  });

  it('a request that never answers ends as request_timeout after BESH_REQUEST_TIMEOUT_MS (one attempt)', async () => {
    const { mock, client } = await setup({}, { BESH_MAX_ATTEMPTS: '1', BESH_REQUEST_TIMEOUT_MS: '500', MAX_WORKERS: '4' });
    const started = Date.now();
    const { batch, output, errors } = await runBatch(client, chatLines(6, { prefix: 'h', marker: (i) => (i === 2 ? 'MOCK_HANG' : undefined) }));
    const elapsed = Date.now() - started;

    expect(batch.status).toBe('completed');
    expect(batch.request_counts).toEqual({ total: 6, completed: 5, failed: 1 });
    expect(output).toHaveLength(5);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.custom_id).toBe('h-2');
    expect(errors[0]!.response).toBeNull();
    expect(errors[0]!.error.code).toBe('request_timeout');
    expect(typeof errors[0]!.error.message).toBe('string');
    expect(mock.stats().received['h-2']).toBe(1);
    expect(elapsed).toBeGreaterThanOrEqual(450);
  });

  it('a timed-out request is retried like any network failure, then reported as request_timeout', async () => {
    const { mock, client } = await setup({}, { BESH_MAX_ATTEMPTS: '3', BESH_REQUEST_TIMEOUT_MS: '300', MAX_WORKERS: '4' });
    const { batch, errors } = await runBatch(client, chatLines(3, { prefix: 't', marker: (i) => (i === 0 ? 'MOCK_HANG' : undefined) }));

    expect(batch.status).toBe('completed');
    expect(batch.request_counts).toEqual({ total: 3, completed: 2, failed: 1 });
    expect(errors.map((e) => [e.custom_id, e.error?.code])).toEqual([['t-0', 'request_timeout']]);
    expect(mock.stats().received['t-0']).toBe(3);
  });
  it('an answer larger than BESH_MAX_RESPONSE_BYTES is a final response_too_large failure (not retried)', async () => {
    const { mock, client } = await setup({}, { BESH_MAX_ATTEMPTS: '4', BESH_MAX_RESPONSE_BYTES: '1024', MAX_WORKERS: '4' });
    const line = (id: string, n: number): string =>
      JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'mock-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 16, n } });
    const { batch, output, errors } = await runBatch(client, `${line('small', 1)}\n${line('huge', 40)}\n`);

    expect(batch.status).toBe('completed');
    expect(batch.request_counts).toEqual({ total: 2, completed: 1, failed: 1 });
    expect(ids(output)).toEqual(['small']);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.custom_id).toBe('huge');
    expect(errors[0]!.response).toBeNull();
    expect(errors[0]!.error.code).toBe('response_too_large');
    expect(mock.stats().received).toEqual({ small: 1, huge: 1 });
  });

  it('an unreachable inference server: every line ends connection_error after BESH_MAX_ATTEMPTS', async () => {
    const dead = await startMockServer({ host: '127.0.0.1', port: 0 });
    const deadUrl = dead.url;
    await dead.close(); // nothing listens there any more
    const dir = tempDir('besh-engine-retry-');
    const besh = await startBesh(
      { OPENAI_API_BASE: `${deadUrl}/v1`, BESH_MAX_ATTEMPTS: '3', BESH_RETRY_BASE_MS: '20', BESH_RETRY_MAX_MS: '100', LOG_LEVEL: 'warn' },
      { dataDir: dir.path },
    );
    onTestFinished(async () => {
      await besh.kill();
      dir.remove();
    });
    const { batch, output, errors } = await runBatch(besh.client, chatLines(3, { prefix: 'u' }));

    expect(batch.status).toBe('completed');
    expect(output).toHaveLength(0);
    expect(batch.request_counts).toEqual({ total: 3, completed: 0, failed: 3 });
    expect(ids(errors).sort()).toEqual(['u-0', 'u-1', 'u-2']);
    for (const e of errors) {
      expect(e.response).toBeNull();
      expect(e.error.code).toBe('connection_error');
    }
  });
});
