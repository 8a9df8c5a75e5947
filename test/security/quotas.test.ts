/**
 * Per-project quotas against a real `besh serve`: stored bytes, unfinished batches and queued
 * requests, from the BESH_PROJECT_MAX_* defaults and `besh projects limits` overrides (set before
 * the server starts and while it runs). A refused request is a 429 `insufficient_quota` the SDKs
 * do not retry, and leaves nothing behind: no file row, no blob, no batch row.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

import { RateLimitError, toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { api, countingFetch, type CreatedKey, createKey, expectError, keyClient, projectsCli, uploadForm } from '../helpers/keys.js';
import { type RawAnswer, walk } from '../helpers/raw-http.js';
import { rejects } from '../helpers/sdk-errors.js';

const ADMIN_KEY = `admin-${randomBytes(16).toString('hex')}`;
const DEFAULT_MAX_STORED = 100_000;

/** One JSONL line (a JSON object) of exactly `bytes` bytes, newline included. */
function sized(bytes: number, tag = 's'): string {
  const bare = JSON.stringify({ custom_id: tag, pad: '' }).length + 1;
  if (bytes < bare) throw new Error(`a line needs at least ${bare} bytes`);
  return `${JSON.stringify({ custom_id: tag, pad: 'a'.repeat(bytes - bare) })}\n`;
}

const hangAll = (n: number, prefix: string): string => chatLines(n, { prefix, marker: () => 'MOCK_HANG' });
const hangFirst = (n: number, prefix: string): string => chatLines(n, { prefix, marker: (i) => (i === 0 ? 'MOCK_HANG' : undefined) });

/** The 429 of a quota: OpenAI's envelope, type insufficient_quota, and `x-should-retry: false`. */
function expectQuota(r: RawAnswer, code: string, param: string, label: string): void {
  expectError(r, 429, 'insufficient_quota', code, label);
  expect(r.body.error.param, label).toBe(param);
  expect(r.headers.get('x-should-retry'), label).toBe('false');
}

describe('per-project quotas', () => {
  let mock: MockServer;
  let dir: { path: string; remove(): void };
  let besh: BeshProcess;
  const keys = {} as Record<'small' | 'roomy' | 'race' | 'busy' | 'free' | 'queue', CreatedKey>;

  const as = (p: keyof typeof keys) => keys[p].key;
  const client = (p: keyof typeof keys) => keyClient(besh, as(p));
  const listFiles = async (p: string): Promise<any[]> => (await api(besh, `/v1/files?project=${p}&limit=1000`, { key: ADMIN_KEY })).body.data;
  const listBatchIds = async (p: string): Promise<string[]> =>
    ((await api(besh, `/v1/batches?project=${p}&limit=100`, { key: ADMIN_KEY })).body.data as any[]).map((b) => b.id).sort();
  const project = async (p: string): Promise<any> => (await api(besh, `/v1/projects/${p}`, { key: ADMIN_KEY })).body;
  const uploadRaw = (p: keyof typeof keys, content: string, name = 'q.jsonl') => api(besh, '/v1/files', { key: as(p), body: uploadForm(content, name) });
  const createRaw = (p: keyof typeof keys, input: string) =>
    api(besh, '/v1/batches', { key: as(p), json: { input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' } });

  /** Blobs of uploads (local files, or a cluster's S3 objects), and leftover partial uploads on disk. */
  const uploadBlobs = async (): Promise<string[]> => (await besh.listBlobs('files/')).map((k) => k.slice('files/'.length));
  const partials = (): string[] => walk(join(dir.path, 'tmp'));
  /** Every upload row has its blob and every blob its row. */
  async function expectBlobsMatchRows(): Promise<void> {
    const all = (await api(besh, '/v1/files?purpose=batch&limit=10000', { key: ADMIN_KEY })).body.data as any[];
    expect(await uploadBlobs()).toEqual(all.map((f) => `${f.id}.jsonl`).sort());
    expect(partials()).toEqual([]);
  }

  beforeAll(async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 10 });
    dir = tempDir('besh-quotas-');
    keys.small = await createKey(dir.path, 'small');
    const names = ['roomy', 'race', 'busy', 'free', 'queue'] as const;
    const made = await Promise.all(names.map((n) => createKey(dir.path, n)));
    names.forEach((n, i) => (keys[n] = made[i]!));
    // Overrides made before the server starts.
    const [small, free] = await Promise.all([
      projectsCli(dir.path, 'limits', 'small', '--max-stored-bytes', '1500'),
      projectsCli(dir.path, 'limits', 'free', '--max-active-batches', 'none'),
    ]);
    expect(small.code, small.stderr).toBe(0);
    expect(free.code, free.stderr).toBe(0);
    besh = await startBesh(
      {
        OPENAI_API_BASE: `${mock.url}/v1`,
        BESH_ADMIN_KEY: ADMIN_KEY,
        BESH_PROJECT_MAX_STORED_BYTES: String(DEFAULT_MAX_STORED),
        BESH_PROJECT_MAX_ACTIVE_BATCHES: '1',
        BESH_RETRY_BASE_MS: '20',
        BESH_PROGRESS_FLUSH_MS: '100',
        BESH_SHUTDOWN_GRACE_MS: '300',
        LOG_LEVEL: 'warn',
      },
      { dataDir: dir.path },
    );
  });

  afterAll(async () => {
    await besh?.stop();
    await mock?.close();
    dir?.remove();
  });

  it('stored bytes: an upload that would pass the limit is refused with 429 storage_quota_exceeded and leaves nothing', async () => {
    const first = await uploadRaw('small', sized(1000, 'first'));
    expect(first.status, first.text).toBe(200);
    expect(first.body.bytes).toBe(1000);
    expect(await project('small')).toMatchObject({ stored_bytes: 1000, limits: { max_stored_bytes: 1500 } });

    const over = await uploadRaw('small', sized(600, 'over'));
    expectQuota(over, 'storage_quota_exceeded', 'file', 'upload past the limit');
    expect((await listFiles('small')).map((f) => f.id)).toEqual([first.body.id]);
    expect((await project('small')).stored_bytes).toBe(1000);
    await expectBlobsMatchRows();
    expect(await uploadBlobs()).toEqual([`${first.body.id}.jsonl`]);

    // The SDK (which retries 429s by default) sends it once.
    const counter = countingFetch();
    const sdk = keyClient(besh, as('small'), { maxRetries: 3, fetch: counter.fetch });
    const started = Date.now();
    await rejects(sdk.files.create({ file: await toFile(Buffer.from(sized(600, 'sdk')), 'sdk.jsonl'), purpose: 'batch' }), RateLimitError, 429);
    expect(counter.count(), counter.log.join('; ')).toBe(1);
    expect(Date.now() - started).toBeLessThan(2000);
    await expectBlobsMatchRows();

    // Up to the limit exactly is fine …
    const exact = await uploadRaw('small', sized(500, 'exact'));
    expect(exact.status, exact.text).toBe(200);
    expect((await project('small')).stored_bytes).toBe(1500);
    // … and a project already at its limit is refused, however small the upload.
    const full = await uploadRaw('small', sized(40, 'tiny'));
    expectQuota(full, 'storage_quota_exceeded', 'file', 'upload when full');
    expect((await listFiles('small')).map((f) => f.id).sort()).toEqual([first.body.id, exact.body.id].sort());
    await expectBlobsMatchRows();

    // Another project is unaffected (it has the server's default).
    const other = await uploadRaw('roomy', sized(1200, 'roomy'));
    expect(other.status, other.text).toBe(200);
    expect(await project('roomy')).toMatchObject({ stored_bytes: 1200, limits: { max_stored_bytes: DEFAULT_MAX_STORED } });

    // Deleting frees room again.
    expect((await api(besh, `/v1/files/${exact.body.id}`, { key: as('small'), method: 'DELETE' })).status).toBe(200);
    const again = await uploadRaw('small', sized(400, 'again'));
    expect(again.status, again.text).toBe(200);
    expect((await project('small')).stored_bytes).toBe(1400);
    await expectBlobsMatchRows();
  });

  it('stored bytes: a limit set while the server runs counts at once; two uploads racing for the last bytes cannot both pass', async () => {
    const set = await projectsCli(dir.path, 'limits', 'race', '--max-stored-bytes', '1000');
    expect(set.code, set.stderr).toBe(0);
    const answers = await Promise.all([uploadRaw('race', sized(600, 'a')), uploadRaw('race', sized(600, 'b'))]);
    expect(answers.map((r) => r.status).sort()).toEqual([200, 429]);
    const refused = answers.find((r) => r.status === 429)!;
    expectQuota(refused, 'storage_quota_exceeded', 'file', 'racing upload');
    const kept = answers.find((r) => r.status === 200)!;
    expect((await listFiles('race')).map((f) => f.id)).toEqual([kept.body.id]);
    expect((await project('race')).stored_bytes).toBe(600);
    await expectBlobsMatchRows();
  });

  it('stored bytes count batch outputs too', async () => {
    const input = await upload(client('roomy'), chatLines(2, { prefix: 'roomy' }), 'roomy-batch.jsonl');
    const b = await client('roomy').batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitDone(client('roomy'), b.id);
    expect(done.status).toBe('completed');
    const files = await listFiles('roomy');
    const output = files.find((f) => f.id === done.output_file_id);
    expect(output?.bytes).toBeGreaterThan(0);
    expect((await project('roomy')).stored_bytes).toBe(files.reduce((a, f) => a + (f.bytes as number), 0));
  });

  it('unfinished batches: create is refused with 429 batch_quota_exceeded, allowed again once one finishes or is cancelled', async () => {
    const c = client('busy');
    const hang = await upload(c, hangFirst(2, 'busy-hang'), 'busy-hang.jsonl');
    const quick = await upload(c, chatLines(1, { prefix: 'busy' }), 'busy.jsonl');
    const first = await c.batches.create({ input_file_id: hang, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(c, first.id, (b) => b.status === 'in_progress');

    const refused = await createRaw('busy', quick);
    expectQuota(refused, 'batch_quota_exceeded', 'input_file_id', 'second unfinished batch');
    expect(await listBatchIds('busy')).toEqual([first.id]);
    expect((await project('busy')).active_batches).toBe(1);

    const counter = countingFetch();
    const sdk = keyClient(besh, as('busy'), { maxRetries: 3, fetch: counter.fetch });
    await rejects(sdk.batches.create({ input_file_id: quick, endpoint: '/v1/chat/completions', completion_window: '24h' }), RateLimitError, 429);
    expect(counter.count(), counter.log.join('; ')).toBe(1);
    expect(await listBatchIds('busy')).toEqual([first.id]);

    // Cancelled: room again.
    await c.batches.cancel(first.id);
    expect((await waitDone(c, first.id)).status).toBe('cancelled');
    const second = await createRaw('busy', quick);
    expect(second.status, second.text).toBe(200);
    // Finished: room again.
    expect((await waitDone(c, second.body.id)).status).toBe('completed');
    const third = await createRaw('busy', quick);
    expect(third.status, third.text).toBe(200);
    expect((await waitDone(c, third.body.id)).status).toBe('completed');
    expect(await listBatchIds('busy')).toEqual([first.id, second.body.id, third.body.id].sort());

    // A project whose own limit is 'none' is not bound by the server's default of 1.
    const f = client('free');
    const inputs = await Promise.all([0, 1].map((i) => upload(f, hangFirst(2, `free-${i}`), `free-${i}.jsonl`)));
    const running = [];
    for (const input of inputs) {
      const r = await createRaw('free', input);
      expect(r.status, r.text).toBe(200);
      running.push(r.body.id as string);
    }
    expect((await project('free')).active_batches).toBe(2);
    for (const id of running) await f.batches.cancel(id);
    for (const id of running) expect((await waitDone(f, id)).status).toBe('cancelled');
  });

  it('queued requests: create is refused with 429 request_quota_exceeded when the new lines would pass the limit, with no batch row', async () => {
    // Set while the server runs.
    const set = await projectsCli(dir.path, 'limits', 'queue', '--max-queued-requests', '5', '--max-active-batches', '3');
    expect(set.code, set.stderr).toBe(0);
    const c = client('queue');
    const hanging = await upload(c, hangAll(3, 'queue-hang'), 'queue-hang.jsonl');
    const three = await upload(c, chatLines(3, { prefix: 'three' }), 'three.jsonl');
    const two = await upload(c, chatLines(2, { prefix: 'two' }), 'two.jsonl');
    const held = await c.batches.create({ input_file_id: hanging, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(c, held.id, (b) => b.status === 'in_progress' && b.request_counts!.total === 3);
    expect(await project('queue')).toMatchObject({ queued_requests: 3, active_batches: 1, limits: { max_queued_requests: 5, max_active_batches: 3 } });

    // 3 queued + 3 new > 5.
    const refused = await createRaw('queue', three);
    expectQuota(refused, 'request_quota_exceeded', 'input_file_id', '3 more requests');
    expect(await listBatchIds('queue')).toEqual([held.id]);
    const dash = await api(besh, '/v1/batches/dashboard', { key: as('queue') });
    expect(dash.body.total).toBe(1);
    const counter = countingFetch();
    const sdk = keyClient(besh, as('queue'), { maxRetries: 3, fetch: counter.fetch });
    await rejects(sdk.batches.create({ input_file_id: three, endpoint: '/v1/chat/completions', completion_window: '24h' }), RateLimitError, 429);
    expect(counter.count(), counter.log.join('; ')).toBe(1);
    expect(await listBatchIds('queue')).toEqual([held.id]);

    // 3 + 2 = 5: exactly the limit is fine.
    const fits = await createRaw('queue', two);
    expect(fits.status, fits.text).toBe(200);
    expect((await waitDone(c, fits.body.id)).status).toBe('completed');
    expect((await project('queue')).queued_requests).toBe(3);

    // `besh projects list` shows usage against limits, read while the server runs.
    const list = await projectsCli(dir.path, 'list', '--json');
    expect(list.code, list.stderr).toBe(0);
    const rows = JSON.parse(list.stdout) as any[];
    const row = (n: string) => rows.find((r) => r.name === n);
    expect(row('queue')).toEqual({ name: 'queue', usage: { storedBytes: expect.any(Number), activeBatches: 1, queuedRequests: 3 }, limits: { maxStoredBytes: null, maxActiveBatches: 3, maxQueuedRequests: 5 } });
    expect(row('small')).toEqual({ name: 'small', usage: { storedBytes: 1400, activeBatches: 0, queuedRequests: 0 }, limits: { maxStoredBytes: 1500, maxActiveBatches: null, maxQueuedRequests: null } });
    expect(row('free').limits).toEqual({ maxStoredBytes: null, maxActiveBatches: 0, maxQueuedRequests: null });
    const queueBytes = (await listFiles('queue')).reduce((a, f) => a + (f.bytes as number), 0);
    expect(row('queue').usage.storedBytes).toBe(queueBytes);

    // Once the held batch is cancelled, a batch of the whole limit fits.
    await c.batches.cancel(held.id);
    expect((await waitDone(c, held.id)).status).toBe('cancelled');
    expect((await project('queue')).queued_requests).toBe(0);
    const five = await upload(c, chatLines(5, { prefix: 'five' }), 'five.jsonl');
    const big = await createRaw('queue', five);
    expect(big.status, big.text).toBe(200);
    expect((await waitDone(c, big.body.id)).status).toBe('completed');
  });

  it('`besh projects limits` sets, keeps and clears limits (none / default)', async () => {
    const show = async (p: string) => (await project(p)).limits;

    // Options not given keep their value; sizes take units.
    const r1 = await projectsCli(dir.path, 'limits', 'small', '--max-active-batches', '4', '--json');
    expect(r1.code, r1.stderr).toBe(0);
    expect(JSON.parse(r1.stdout)).toEqual({ project: 'small', limits: { maxStoredBytes: 1500, maxActiveBatches: 4, maxQueuedRequests: null } });
    const r2 = await projectsCli(dir.path, 'limits', 'small', '--max-stored-bytes', '2KB', '--json');
    expect(JSON.parse(r2.stdout).limits).toEqual({ maxStoredBytes: 2000, maxActiveBatches: 4, maxQueuedRequests: null });
    expect(await show('small')).toEqual({ max_stored_bytes: 2000, max_active_batches: 4, max_queued_requests: null });

    // none: no limit for this project, whatever the server's default.
    const r3 = await projectsCli(dir.path, 'limits', 'small', '--max-stored-bytes', 'none', '--json');
    expect(JSON.parse(r3.stdout).limits.maxStoredBytes).toBe(0);
    expect((await show('small')).max_stored_bytes).toBeNull();
    const big = await uploadRaw('small', sized(3000, 'big'));
    expect(big.status, big.text).toBe(200);

    // default: the server's BESH_PROJECT_MAX_* applies again.
    const r4 = await projectsCli(dir.path, 'limits', 'small', '--max-stored-bytes', 'default', '--max-active-batches', 'default', '--json');
    expect(JSON.parse(r4.stdout).limits).toEqual({ maxStoredBytes: null, maxActiveBatches: null, maxQueuedRequests: null });
    expect(await show('small')).toEqual({ max_stored_bytes: DEFAULT_MAX_STORED, max_active_batches: 1, max_queued_requests: null });
    const r5 = await projectsCli(dir.path, 'limits', 'free', '--max-active-batches', 'default');
    expect(r5.code, r5.stderr).toBe(0);
    expect((await show('free')).max_active_batches).toBe(1);

    // Bad values and no option at all are refused, and change nothing.
    const attempts = [['--max-stored-bytes', '0'], ['--max-stored-bytes', '5XB'], ['--max-queued-requests', 'lots'], ['--max-active-batches', '3MB'], []];
    const refused = await Promise.all(attempts.map((args) => projectsCli(dir.path, 'limits', 'small', ...args)));
    refused.forEach((bad, i) => {
      expect(bad.code, `${attempts[i]!.join(' ')}: ${bad.stdout}`).toBe(2);
      expect(bad.stderr).toMatch(/besh projects: /);
    });
    expect(await show('small')).toEqual({ max_stored_bytes: DEFAULT_MAX_STORED, max_active_batches: 1, max_queued_requests: null });
  });

  it('`besh projects limits` refuses a count that is not a whole number (it does not round it)', async () => {
    // The option takes "a whole number" (its own error message says so); 2.5 must not become 3.
    const bad = await projectsCli(dir.path, 'limits', 'roomy', '--max-active-batches', '2.5', '--json');
    expect(bad.code, bad.stdout).toBe(2);
    expect(bad.stderr).toMatch(/whole number/);
    expect((await project('roomy')).limits.max_active_batches).toBe(1);
  });
});
