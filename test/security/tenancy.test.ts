/**
 * Tenant isolation against a real `besh serve` (built binary, SQLite data dir, mock upstream):
 * two projects with their own keys (made by `besh keys create` before the server starts) and the
 * BESH_ADMIN_KEY admin. A key sees, downloads, cancels and deletes only its project's objects;
 * another project's ids answer exactly like ids that do not exist; lists, analytics and the event
 * stream show only the key's project; keys made or revoked while the server runs count at once.
 */
import { randomBytes } from 'node:crypto';

import type OpenAI from 'openai';
import { AuthenticationError, NotFoundError, PermissionDeniedError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, readJsonl, upload, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import {
  api,
  type ApiInit,
  type CreatedKey,
  createKey,
  expectError,
  expectSameAsMissing,
  keyClient,
  listKeys,
  openEvents,
  randomBatchId,
  randomFileId,
  revokeKey,
  sseEvents,
  uploadForm,
} from '../helpers/keys.js';
import type { RawAnswer } from '../helpers/raw-http.js';
import { rejects } from '../helpers/sdk-errors.js';

const ADMIN_KEY = `admin-${randomBytes(16).toString('hex')}`;

type Project = 'alpha' | 'beta';
const OTHER: Record<Project, Project> = { alpha: 'beta', beta: 'alpha' };

/** One project's key, client and the objects the setup made for it. */
interface Tenant {
  key: CreatedKey;
  client: OpenAI;
  /** A 3-line batch, the middle line failing (so it has an output and an error file). */
  input: string;
  batch: string;
  output: string;
  error: string;
  /** A 1-line batch created after `batch`. */
  smallInput: string;
  smallBatch: string;
  smallOutput: string;
}

const ids = (xs: Array<{ id: string }>): string[] => xs.map((x) => x.id).sort();
const sum = (rows: any[], key: string): number => rows.reduce((a, r) => a + (r[key] as number), 0);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until `ok` holds (analytics are counted as requests finish) or `ms` passes; returns the last value. */
async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await sleep(100);
  }
}

describe('tenancy: two projects, project keys and an admin key', () => {
  let mock: MockServer;
  let dir: { path: string; remove(): void };
  let besh: BeshProcess;
  let admin: OpenAI;
  /** A second alpha key, revoked while the server runs. */
  let alpha2: CreatedKey;
  const t = {} as Record<Project, Tenant>;

  const get = (path: string, key: string | undefined, headers: Record<string, string> = {}): Promise<RawAnswer> => api(besh, path, { key, headers });
  const keyOf = (p: Project): string => t[p].key.key;

  async function seed(p: Project): Promise<void> {
    const client = t[p].client;
    t[p].input = await upload(client, chatLines(3, { prefix: p, marker: (i) => (i === 1 ? 'MOCK_FAIL_400' : undefined) }), `${p}.jsonl`);
    const b = await client.batches.create({ input_file_id: t[p].input, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { project: p } });
    const done = await waitDone(client, b.id);
    expect(done.status, JSON.stringify(done)).toBe('completed');
    expect(done.request_counts).toEqual({ total: 3, completed: 2, failed: 1 });
    t[p].batch = b.id;
    t[p].output = done.output_file_id!;
    t[p].error = done.error_file_id!;
    expect(t[p].output).toMatch(/^file-/);
    expect(t[p].error).toMatch(/^file-/);
    t[p].smallInput = await upload(client, chatLines(1, { prefix: `${p}-small` }), `${p}-small.jsonl`);
    const small = await client.batches.create({ input_file_id: t[p].smallInput, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const smallDone = await waitDone(client, small.id);
    expect(smallDone.status).toBe('completed');
    t[p].smallBatch = small.id;
    t[p].smallOutput = smallDone.output_file_id!;
  }

  beforeAll(async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 10 });
    dir = tempDir('besh-tenancy-');
    // The first key creates the database; the others may then be made side by side.
    const alphaKey = await createKey(dir.path, 'alpha', { name: 'alpha main' });
    const [betaKey, second] = await Promise.all([createKey(dir.path, 'beta'), createKey(dir.path, 'alpha', { name: 'alpha spare' })]);
    alpha2 = second;
    besh = await startBesh(
      {
        OPENAI_API_BASE: `${mock.url}/v1`,
        BESH_ADMIN_KEY: ADMIN_KEY,
        BESH_RETRY_BASE_MS: '20',
        BESH_PROGRESS_FLUSH_MS: '100',
        BESH_SHUTDOWN_GRACE_MS: '300',
        LOG_LEVEL: 'info',
      },
      { dataDir: dir.path },
    );
    admin = keyClient(besh, ADMIN_KEY);
    t.alpha = { key: alphaKey, client: keyClient(besh, alphaKey.key) } as Tenant;
    t.beta = { key: betaKey, client: keyClient(besh, betaKey.key) } as Tenant;
    await Promise.all([seed('alpha'), seed('beta')]);
  });

  afterAll(async () => {
    await besh?.stop();
    await mock?.close();
    dir?.remove();
  });

  it('the official SDK works end-to-end with a project key: upload, create, wait, download', async () => {
    const client = t.alpha.client;
    const out = await readJsonl(client, t.alpha.output);
    expect(out.map((l) => l.custom_id).sort()).toEqual(['alpha-0', 'alpha-2']);
    for (const l of out) expect(l.response.status_code).toBe(200);
    const err = await readJsonl(client, t.alpha.error);
    expect(err.map((l) => l.custom_id)).toEqual(['alpha-1']);
    const input = await (await client.files.content(t.alpha.input)).text();
    expect(input).toBe(chatLines(3, { prefix: 'alpha', marker: (i) => (i === 1 ? 'MOCK_FAIL_400' : undefined) }));
  });

  it('/v1/me says who each key is', async () => {
    const a = await get('/v1/me', keyOf('alpha'));
    expect(a.status, a.text).toBe(200);
    expect(a.body).toEqual({ object: 'principal', auth: 'keys', project: 'alpha', admin: false, key_id: t.alpha.key.id });
    const b = await get('/v1/me', keyOf('beta'));
    expect(b.body).toEqual({ object: 'principal', auth: 'keys', project: 'beta', admin: false, key_id: t.beta.key.id });
    const root = await get('/v1/me', ADMIN_KEY);
    expect(root.body).toEqual({ object: 'principal', auth: 'keys', project: 'default', admin: true, key_id: null });
  });

  it('/v1/projects: the admin sees both projects, a project key only its own; another project is 404', async () => {
    const all = await get('/v1/projects', ADMIN_KEY);
    expect(all.status, all.text).toBe(200);
    const names = all.body.data.map((p: any) => p.name);
    expect(names).toEqual(expect.arrayContaining(['alpha', 'beta']));

    for (const p of ['alpha', 'beta'] as const) {
      const own = await get('/v1/projects', keyOf(p));
      expect(own.status, own.text).toBe(200);
      expect(own.body.data.map((x: any) => x.name)).toEqual([p]);
      const files = await get(`/v1/files?project=${p}&limit=100`, ADMIN_KEY);
      const bytes = sum(files.body.data, 'bytes');
      expect(bytes).toBeGreaterThan(0);
      expect(own.body.data[0]).toMatchObject({ object: 'project', name: p, stored_bytes: bytes, active_batches: 0, queued_requests: 0 });
      // The admin's view of the project says the same.
      expect(all.body.data.find((x: any) => x.name === p)).toMatchObject({ stored_bytes: bytes });

      const one = await get(`/v1/projects/${p}`, keyOf(p));
      expect(one.status, one.text).toBe(200);
      expect(one.body).toMatchObject({ object: 'project', name: p, stored_bytes: bytes });

      const other = await get(`/v1/projects/${OTHER[p]}`, keyOf(p));
      expectError(other, 404, 'invalid_request_error', 'project_not_found', `${p} reads /v1/projects/${OTHER[p]}`);
      expect(other.text).not.toContain('stored_bytes');
      const missing = await get('/v1/projects/no-such-project', keyOf(p));
      expectError(missing, 404, 'invalid_request_error', 'project_not_found', `${p} reads a missing project`);

      const asAdmin = await get(`/v1/projects/${OTHER[p]}`, ADMIN_KEY);
      expect(asAdmin.status, asAdmin.text).toBe(200);
      expect(asAdmin.body.name).toBe(OTHER[p]);
    }
  });

  it('files.list and batches.list show only the key’s own objects; admin sees all and ?project= narrows', async () => {
    const adminFiles = await get('/v1/files?limit=1000', ADMIN_KEY);
    const adminBatches = await get('/v1/batches?limit=100', ADMIN_KEY);
    expect(adminFiles.status, adminFiles.text).toBe(200);
    for (const p of ['alpha', 'beta'] as const) {
      const mine = [t[p].input, t[p].output, t[p].error, t[p].smallInput, t[p].smallOutput];
      const theirs = [t[OTHER[p]].input, t[OTHER[p]].output, t[OTHER[p]].error, t[OTHER[p]].smallInput, t[OTHER[p]].smallOutput];

      // The SDK's list, as a user would call it.
      const sdkFiles = (await t[p].client.files.list({ limit: 100 })).data;
      expect(ids(sdkFiles)).toEqual(expect.arrayContaining(mine));
      for (const id of theirs) expect(ids(sdkFiles)).not.toContain(id);
      const sdkBatches = (await t[p].client.batches.list({ limit: 100 })).data;
      expect(ids(sdkBatches)).toEqual([t[p].batch, t[p].smallBatch].sort());

      // Exactly the admin's view of the project, nothing more.
      const scoped = await get(`/v1/files?project=${p}&limit=1000`, ADMIN_KEY);
      expect(ids(sdkFiles)).toEqual(ids(scoped.body.data));
      const scopedBatches = await get(`/v1/batches?project=${p}&limit=100`, ADMIN_KEY);
      expect(ids(scopedBatches.body.data)).toEqual(ids(sdkBatches));

      // A project key's ?project= names nothing but its own project.
      const asked = await get(`/v1/files?project=${OTHER[p]}&limit=1000`, keyOf(p));
      expect(ids(asked.body.data)).toEqual(ids(sdkFiles));
      const askedBatches = await get(`/v1/batches?project=${OTHER[p]}&limit=100`, keyOf(p));
      expect(ids(askedBatches.body.data)).toEqual(ids(sdkBatches));

      // The admin sees both projects' objects.
      expect(ids(adminFiles.body.data)).toEqual(expect.arrayContaining([...mine, ...theirs]));
      expect(ids(adminBatches.body.data)).toEqual(expect.arrayContaining([t[p].batch, t[p].smallBatch]));
    }
    // The unscoped admin list is the union of the projects' lists.
    const perProject = await Promise.all(['alpha', 'beta', 'default'].map((p) => get(`/v1/files?project=${p}&limit=1000`, ADMIN_KEY)));
    expect(ids(adminFiles.body.data)).toEqual(perProject.flatMap((r) => ids(r.body.data)).sort());
  });

  it('a list cursor (after) naming another project’s object gives an empty page', async () => {
    for (const p of ['alpha', 'beta'] as const) {
      const o = t[OTHER[p]];
      for (const order of ['asc', 'desc'] as const) {
        for (const after of [o.input, o.output, o.smallInput]) {
          const r = await get(`/v1/files?after=${after}&order=${order}&limit=100`, keyOf(p));
          expect(r.status, r.text).toBe(200);
          expect(r.body, `${p} files after ${after} ${order}`).toMatchObject({ object: 'list', data: [], has_more: false });
        }
      }
      const sdk = await t[p].client.files.list({ after: o.input, order: 'asc' });
      expect(sdk.data).toEqual([]);
      for (const after of [o.batch, o.smallBatch]) {
        const r = await get(`/v1/batches?after=${after}&limit=100`, keyOf(p));
        expect(r.body, `${p} batches after ${after}`).toMatchObject({ object: 'list', data: [], has_more: false });
      }
      expect((await t[p].client.batches.list({ after: o.smallBatch })).data).toEqual([]);

      // The same cursors on the key's own objects do page (so the empty pages above mean something).
      const ownFiles = await get(`/v1/files?after=${t[p].input}&order=asc&limit=100`, keyOf(p));
      expect(ids(ownFiles.body.data)).toEqual(expect.arrayContaining([t[p].output, t[p].error, t[p].smallInput]));
      const ownBatches = await get(`/v1/batches?after=${t[p].smallBatch}&limit=100`, keyOf(p));
      expect(ids(ownBatches.body.data)).toEqual([t[p].batch]);
      // An admin's list scoped to one project treats the other project's cursor alike.
      const scoped = await get(`/v1/batches?project=${p}&after=${o.smallBatch}`, ADMIN_KEY);
      expect(scoped.body).toMatchObject({ data: [], has_more: false });
    }
  });

  it('every route answers another project’s ids exactly as ids that do not exist', async () => {
    const fileRoutes: Array<[string, (id: string) => string]> = [
      ['GET', (id) => `/v1/files/${id}`],
      ['GET', (id) => `/v1/files/${id}/content`],
      ['DELETE', (id) => `/v1/files/${id}`],
    ];
    const batchRoutes: Array<[string, (id: string) => string]> = [
      ['GET', (id) => `/v1/batches/${id}`],
      ['POST', (id) => `/v1/batches/${id}/cancel`],
      ['DELETE', (id) => `/v1/batches/${id}`],
      ['GET', (id) => `/v1/batches/${id}/token_usage`],
    ];
    for (const p of ['alpha', 'beta'] as const) {
      const o = t[OTHER[p]];
      const cases: Array<[string, (id: string) => string, string, string, string]> = [
        ...[o.input, o.output, o.error, o.smallInput, o.smallOutput].flatMap((id) =>
          fileRoutes.map(([m, path]) => [m, path, id, randomFileId(), 'file_not_found'] as [string, (id: string) => string, string, string, string]),
        ),
        ...[o.batch, o.smallBatch].flatMap((id) =>
          batchRoutes.map(([m, path]) => [m, path, id, randomBatchId(), 'batch_not_found'] as [string, (id: string) => string, string, string, string]),
        ),
      ];
      for (const [method, path, hiddenId, missingId, code] of cases) {
        const label = `${p} ${method} ${path(hiddenId)}`;
        const hidden = await api(besh, path(hiddenId), { key: keyOf(p), method });
        const missing = await api(besh, path(missingId), { key: keyOf(p), method });
        expectError(hidden, 404, 'invalid_request_error', code, label);
        expectSameAsMissing(hidden, hiddenId, missing, missingId, label);
      }
    }
    // Nothing was deleted or cancelled: each project still has all its objects, unchanged.
    for (const p of ['alpha', 'beta'] as const) {
      for (const id of [t[p].input, t[p].output, t[p].error, t[p].smallInput]) {
        const r = await get(`/v1/files/${id}/content`, keyOf(p));
        expect(r.status, `${p} content ${id}: ${r.text}`).toBe(200);
        expect(r.text.length).toBeGreaterThan(0);
      }
      for (const id of [t[p].batch, t[p].smallBatch]) expect((await t[p].client.batches.retrieve(id)).status).toBe('completed');
    }
  });

  it('a batch cannot be created from another project’s input file (404 file_not_found, nothing created)', async () => {
    const before = await get('/v1/batches?limit=100', ADMIN_KEY);
    for (const p of ['alpha', 'beta'] as const) {
      const theirs = t[OTHER[p]].input;
      const body = (id: string) => ({ input_file_id: id, endpoint: '/v1/chat/completions', completion_window: '24h' });
      const hidden = await api(besh, '/v1/batches', { key: keyOf(p), json: body(theirs) });
      const missingId = randomFileId();
      const missing = await api(besh, '/v1/batches', { key: keyOf(p), json: body(missingId) });
      expectError(hidden, 404, 'invalid_request_error', 'file_not_found', `${p} batch from ${theirs}`);
      expect(hidden.body.error.param).toBe('input_file_id');
      expectSameAsMissing(hidden, theirs, missing, missingId, `${p} batch from another project's file`);
      await rejects(t[p].client.batches.create({ input_file_id: theirs, endpoint: '/v1/chat/completions', completion_window: '24h' }), NotFoundError, 404);
    }
    const after = await get('/v1/batches?limit=100', ADMIN_KEY);
    expect(ids(after.body.data)).toEqual(ids(before.body.data));
  });

  it('output and error files belong to the batch’s project, also for a batch an admin created', async () => {
    for (const p of ['alpha', 'beta'] as const) {
      const outputs = await get(`/v1/files?project=${p}&purpose=batch_output&limit=100`, ADMIN_KEY);
      expect(ids(outputs.body.data)).toEqual([t[p].output, t[p].error, t[p].smallOutput].sort());
      expect((await t[p].client.files.retrieve(t[p].output)).purpose).toBe('batch_output');
    }
    // An admin batch (no OpenAI-Project) lives in its input file's project, and so do its results.
    const b = await admin.batches.create({ input_file_id: t.beta.smallInput, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitDone(admin, b.id);
    expect(done.status).toBe('completed');
    expect((await t.beta.client.batches.retrieve(b.id)).id).toBe(b.id);
    await rejects(t.alpha.client.batches.retrieve(b.id), NotFoundError, 404);
    expect((await readJsonl(t.beta.client, done.output_file_id)).map((l) => l.custom_id)).toEqual(['beta-small-0']);
    await rejects(t.alpha.client.files.retrieve(done.output_file_id!), NotFoundError, 404);
    const betaOutputs = await get('/v1/files?project=beta&purpose=batch_output&limit=100', ADMIN_KEY);
    expect(ids(betaOutputs.body.data)).toContain(done.output_file_id);
    const alphaOutputs = await get('/v1/files?project=alpha&purpose=batch_output&limit=100', ADMIN_KEY);
    expect(ids(alphaOutputs.body.data)).not.toContain(done.output_file_id);
  });

  /** What the admin's per-project lists say a project holds and did. */
  async function expected(project: string | undefined) {
    const q = project === undefined ? '' : `project=${project}&`;
    const batches = (await get(`/v1/batches?${q}limit=100`, ADMIN_KEY)).body.data as any[];
    const files = (await get(`/v1/files?${q}limit=1000`, ADMIN_KEY)).body.data as any[];
    const uploads = files.filter((f) => f.purpose === 'batch');
    return {
      batchIds: ids(batches),
      batches: batches.length,
      completedBatches: batches.filter((b) => b.status === 'completed').length,
      completed: batches.reduce((a, b) => a + b.request_counts.completed, 0),
      failed: batches.reduce((a, b) => a + b.request_counts.failed, 0),
      inputTokens: batches.reduce((a, b) => a + b.usage.input_tokens, 0),
      outputTokens: batches.reduce((a, b) => a + b.usage.output_tokens, 0),
      uploads: uploads.length,
      uploadBytes: sum(uploads, 'bytes'),
      storedBytes: sum(files, 'bytes'),
      batchBytes: sum(uploads, 'bytes'),
    };
  }

  it('analytics routes show only the key’s project; the admin sees all, ?project= narrows', async () => {
    const want = { alpha: await expected('alpha'), beta: await expected('beta'), all: await expected(undefined) };
    // Both projects did something, differently (so a leak would change the figures).
    expect(want.alpha.batches).toBe(2);
    expect(want.beta.batches).toBe(3);
    expect(want.all.batches).toBe(5);

    const views: Array<[string, string | undefined, string, keyof typeof want]> = [
      ['alpha', keyOf('alpha'), '', 'alpha'],
      ['alpha asking for beta', keyOf('alpha'), 'project=beta', 'alpha'],
      ['beta', keyOf('beta'), '', 'beta'],
      ['admin', ADMIN_KEY, '', 'all'],
      ['admin ?project=beta', ADMIN_KEY, 'project=beta', 'beta'],
      ['admin ?project=alpha', ADMIN_KEY, 'project=alpha', 'alpha'],
    ];
    for (const [label, key, q, who] of views) {
      const w = want[who];
      const dash = await get(`/v1/batches/dashboard?limit=100&${q}`, key);
      expect(dash.status, `${label}: ${dash.text}`).toBe(200);
      expect(ids(dash.body.data), label).toEqual(w.batchIds);
      expect(dash.body.total, label).toBe(w.batches);
      if (who !== 'all') for (const b of dash.body.data) expect(b.project, label).toBe(who);
      expect(dash.body.summary.batches_by_status.completed, label).toBe(w.completedBatches);
      if (who !== 'all') expect(dash.body.engine.project, label).toBe(who);

      const timeline = await eventually(
        () => get(`/v1/batches/analytics/timeline?${q}`, key),
        (r) => sum(r.body.data, 'requests_completed') >= w.completed && sum(r.body.data, 'batches_created') >= w.batches,
      );
      expect(timeline.status, label).toBe(200);
      expect(sum(timeline.body.data, 'batches_created'), `${label} timeline batches_created`).toBe(w.batches);
      expect(sum(timeline.body.data, 'requests_completed'), `${label} timeline requests_completed`).toBe(w.completed);
      expect(sum(timeline.body.data, 'requests_failed'), `${label} timeline requests_failed`).toBe(w.failed);
      expect(sum(timeline.body.data, 'uploads'), `${label} timeline uploads`).toBe(w.uploads);
      expect(sum(timeline.body.data, 'upload_bytes'), `${label} timeline upload_bytes`).toBe(w.uploadBytes);

      const tokens = await get(`/v1/batches/analytics/tokens?${q}`, key);
      expect(sum(tokens.body.data, 'requests'), `${label} tokens requests`).toBe(w.completed + w.failed);
      expect(sum(tokens.body.data, 'input_tokens'), `${label} tokens input`).toBe(w.inputTokens);
      expect(sum(tokens.body.data, 'output_tokens'), `${label} tokens output`).toBe(w.outputTokens);
      expect(sum(tokens.body.data, 'batches_finished'), `${label} tokens batches_finished`).toBe(w.completedBatches);

      const live = await get(`/v1/batches/analytics/live?${q}`, key);
      expect(live.status, label).toBe(200);
      expect(sum(live.body.data, 'requests_completed'), `${label} live requests_completed`).toBe(w.completed);
      expect(sum(live.body.data, 'input_tokens'), `${label} live input_tokens`).toBe(w.inputTokens);
      if (who !== 'all') expect(live.body.engine.project, label).toBe(who);
    }

    // token_usage of an own batch (the other project's is covered with the 404 routes).
    const own = await t.alpha.client.batches.retrieve(t.alpha.batch);
    const usage = await get(`/v1/batches/${t.alpha.batch}/token_usage`, keyOf('alpha'));
    expect(usage.status, usage.text).toBe(200);
    expect(usage.body).toMatchObject({ object: 'batch.token_usage', batch_id: t.alpha.batch, input_tokens: own.usage!.input_tokens });
    expect((await get(`/v1/batches/${t.alpha.batch}/token_usage`, ADMIN_KEY)).status).toBe(200);
  });

  it('/v1/batches/status shows the key’s project’s storage; the admin all, ?project= narrows', async () => {
    const want = { alpha: await expected('alpha'), beta: await expected('beta'), all: await expected(undefined) };
    expect(want.alpha.storedBytes).not.toBe(want.beta.storedBytes);
    const views: Array<[string, string, string, keyof typeof want]> = [
      ['alpha', keyOf('alpha'), '', 'alpha'],
      ['alpha asking for beta', keyOf('alpha'), 'project=beta', 'alpha'],
      ['beta', keyOf('beta'), '', 'beta'],
      ['admin', ADMIN_KEY, '', 'all'],
      ['admin ?project=beta', ADMIN_KEY, 'project=beta', 'beta'],
    ];
    for (const [label, key, q, who] of views) {
      const w = want[who];
      const status = await get(`/v1/batches/status?${q}`, key);
      expect(status.status, `${label}: ${status.text}`).toBe(200);
      expect(status.body.storage.total_bytes, `${label} status total_bytes`).toBe(w.storedBytes);
      expect(status.body.storage.bytes_by_purpose.batch, `${label} status batch bytes`).toBe(w.batchBytes);
      if (who === 'all') expect(status.body.project, label).toBeUndefined();
      else expect(status.body.project, label).toBe(who);
    }
  });

  it('/v1/events for a project key never carries the other project’s batches', async () => {
    const streams = {
      alpha: openEvents(besh, keyOf('alpha')),
      alphaAskingBeta: openEvents(besh, keyOf('alpha'), '?project=beta'),
      beta: openEvents(besh, keyOf('beta')),
      admin: openEvents(besh, ADMIN_KEY),
      adminAlpha: openEvents(besh, ADMIN_KEY, '?project=alpha'),
    };
    for (const [name, s] of Object.entries(streams)) expect(await s.ready, name).toBe(200);
    await sleep(100);

    const run = async (p: Project) => {
      const input = await upload(t[p].client, chatLines(4, { prefix: `${p}-sse` }), `${p}-sse.jsonl`);
      const b = await t[p].client.batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' });
      const done = await waitDone(t[p].client, b.id);
      return { batch: b.id, input, output: done.output_file_id! };
    };
    const [a, b] = await Promise.all([run('alpha'), run('beta')]);
    // A deletion is an event too.
    expect((await api(besh, `/v1/batches/${b.batch}`, { key: keyOf('beta'), method: 'DELETE' })).status).toBe(200);
    await sleep(1300); // at least one engine tick
    const text = Object.fromEntries(await Promise.all(Object.entries(streams).map(async ([k, s]) => [k, await s.stop()] as const)));

    const expectCarries = (name: string, own: typeof a, other: typeof b) => {
      const s = text[name]!;
      const events = sseEvents(s);
      expect(events.some((e) => e.event === 'status' && e.data.id === own.batch), `${name} sees its batch: ${s.slice(0, 500)}`).toBe(true);
      expect(events.some((e) => e.event === 'engine'), name).toBe(true);
      for (const id of [other.batch, other.input, other.output]) expect(s, `${name} must not carry ${id}`).not.toContain(id);
    };
    expectCarries('alpha', a, b);
    expectCarries('alphaAskingBeta', a, b);
    expectCarries('beta', b, a);
    expectCarries('adminAlpha', a, b);
    expect(text.beta).toMatch(new RegExp(`event: deleted\\ndata: \\{"id":"${b.batch}"\\}`));
    // The admin's unscoped stream carries both (so the stream does carry what the others lack).
    const all = sseEvents(text.admin!);
    expect(all.some((e) => e.event === 'status' && e.data.id === a.batch)).toBe(true);
    expect(all.some((e) => e.event === 'status' && e.data.id === b.batch)).toBe(true);
    expect(all.some((e) => e.event === 'deleted' && e.data.id === b.batch)).toBe(true);
  });

  it('a key cancels and deletes its own project’s batches and files, never another’s', async () => {
    const hanging = (p: Project) => chatLines(2, { prefix: `${p}-hang`, marker: (i) => (i === 0 ? 'MOCK_HANG' : undefined) });
    const start = async (p: Project) => {
      const input = await upload(t[p].client, hanging(p), `${p}-hang.jsonl`);
      const b = await t[p].client.batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' });
      await waitFor(t[p].client, b.id, (x) => x.status === 'in_progress' && x.request_counts!.completed === 1);
      return { input, batch: b.id };
    };
    const [a, b] = await Promise.all([start('alpha'), start('beta')]);

    // beta cannot cancel alpha's running batch, nor delete its file in use or its batch.
    await rejects(t.beta.client.batches.cancel(a.batch), NotFoundError, 404);
    expectError(await api(besh, `/v1/batches/${a.batch}`, { key: keyOf('beta'), method: 'DELETE' }), 404, 'invalid_request_error', 'batch_not_found', 'beta deletes alpha batch');
    await rejects(t.beta.client.files.delete(a.input), NotFoundError, 404);
    expect((await t.alpha.client.batches.retrieve(a.batch)).status).toBe('in_progress');

    // Each cancels its own.
    for (const [p, x] of [['alpha', a], ['beta', b]] as const) {
      const c = await t[p].client.batches.cancel(x.batch);
      expect(['cancelling', 'cancelled']).toContain(c.status);
      expect((await waitDone(t[p].client, x.batch)).status).toBe('cancelled');
    }
    // alpha deletes its own batch and file; beta's stay.
    expect((await api(besh, `/v1/batches/${a.batch}`, { key: keyOf('alpha'), method: 'DELETE' })).body).toMatchObject({ id: a.batch, deleted: true });
    expect(await t.alpha.client.files.delete(a.input)).toMatchObject({ id: a.input, deleted: true });
    await rejects(t.alpha.client.batches.retrieve(a.batch), NotFoundError, 404);
    await rejects(t.alpha.client.files.retrieve(a.input), NotFoundError, 404);
    await rejects(t.alpha.client.files.delete(b.input), NotFoundError, 404);
    expectError(await api(besh, `/v1/batches/${b.batch}`, { key: keyOf('alpha'), method: 'DELETE' }), 404, 'invalid_request_error', 'batch_not_found', 'alpha deletes beta batch');
    expect((await t.beta.client.batches.retrieve(b.batch)).status).toBe('cancelled');
    expect((await t.beta.client.files.retrieve(b.input)).id).toBe(b.input);
  });

  it('OpenAI-Project: an admin acts for that project; a project key naming another project gets 403 project_mismatch', async () => {
    // Admin upload lands in the named project.
    const asAlpha = keyClient(besh, ADMIN_KEY, { project: 'alpha' });
    const f = await upload(asAlpha, chatLines(1, { prefix: 'admin-for-alpha' }), 'admin-alpha.jsonl');
    expect((await t.alpha.client.files.retrieve(f)).id).toBe(f);
    await rejects(t.beta.client.files.retrieve(f), NotFoundError, 404);
    expect(ids((await get('/v1/files?project=alpha&limit=1000', ADMIN_KEY)).body.data)).toContain(f);
    expect(ids((await get('/v1/files?project=default&limit=1000', ADMIN_KEY)).body.data)).not.toContain(f);
    // … and a batch of it too; acting for another project than the file's finds no such file.
    const b = await asAlpha.batches.create({ input_file_id: f, endpoint: '/v1/chat/completions', completion_window: '24h' });
    expect((await t.alpha.client.batches.retrieve(b.id)).id).toBe(b.id);
    await rejects(keyClient(besh, ADMIN_KEY, { project: 'beta' }).batches.create({ input_file_id: t.alpha.smallInput, endpoint: '/v1/chat/completions', completion_window: '24h' }), NotFoundError, 404);
    await waitDone(asAlpha, b.id);

    // An own-project header is fine.
    const same = await upload(keyClient(besh, keyOf('alpha'), { project: 'alpha' }), chatLines(1), 'same.jsonl');
    expect((await t.alpha.client.files.retrieve(same)).id).toBe(same);

    // Another project's name with a project key: 403, and nothing stored anywhere.
    const before = { alpha: await expected('alpha'), beta: await expected('beta') };
    const wrong = keyClient(besh, keyOf('alpha'), { project: 'beta' });
    const e = await rejects(upload(wrong, chatLines(1), 'mismatch.jsonl'), PermissionDeniedError, 403);
    expect(e.code).toBe('project_mismatch');
    const raw = await api(besh, '/v1/files', { key: keyOf('alpha'), body: uploadForm(chatLines(1)), headers: { 'openai-project': 'beta' } });
    expectError(raw, 403, 'permission_error', 'project_mismatch', 'upload with another project');
    expect(raw.headers.get('x-should-retry')).toBe('false');
    const e2 = await rejects(wrong.batches.create({ input_file_id: t.alpha.smallInput, endpoint: '/v1/chat/completions', completion_window: '24h' }), PermissionDeniedError, 403);
    expect(e2.code).toBe('project_mismatch');
    expect(await expected('alpha')).toEqual(before.alpha);
    expect(await expected('beta')).toEqual(before.beta);

    // An admin naming an impossible project is told so.
    const bad = await api(besh, '/v1/files', { key: ADMIN_KEY, body: uploadForm(chatLines(1)), headers: { 'openai-project': '../etc' } });
    expectError(bad, 400, 'invalid_request_error', 'invalid_project', 'admin with a bad project name');
  });

  it('OpenAI-Project naming another project is refused on read routes too (not silently ignored)', async () => {
    // docs/security.md: "a project key sending another project's name gets 403 project_mismatch".
    for (const path of ['/v1/files', `/v1/files/${t.alpha.input}`, '/v1/batches', `/v1/batches/${t.alpha.batch}`, '/v1/batches/dashboard']) {
      const r = await get(path, keyOf('alpha'), { 'openai-project': 'beta' });
      expectError(r, 403, 'permission_error', 'project_mismatch', `GET ${path} as alpha naming beta`);
    }
  });

  it('no key → 401 missing_api_key, a wrong key → 401 invalid_api_key, never echoing the key', async () => {
    const routes: Array<[string, string, () => ApiInit]> = [
      ['GET', '/v1/files', () => ({})],
      ['POST', '/v1/files', () => ({ body: uploadForm(chatLines(2)) })],
      ['GET', `/v1/files/${t.alpha.input}`, () => ({})],
      ['GET', `/v1/files/${t.alpha.output}/content`, () => ({})],
      ['DELETE', `/v1/files/${t.alpha.smallInput}`, () => ({})],
      ['GET', '/v1/batches', () => ({})],
      ['POST', '/v1/batches', () => ({ json: { input_file_id: t.alpha.input, endpoint: '/v1/chat/completions', completion_window: '24h' } })],
      ['GET', `/v1/batches/${t.alpha.batch}`, () => ({})],
      ['POST', `/v1/batches/${t.alpha.batch}/cancel`, () => ({})],
      ['DELETE', `/v1/batches/${t.alpha.batch}`, () => ({})],
      ['GET', `/v1/batches/${t.alpha.batch}/token_usage`, () => ({})],
      ['GET', '/v1/batches/dashboard', () => ({})],
      ['GET', '/v1/batches/status', () => ({})],
      ['GET', '/v1/batches/analytics/timeline', () => ({})],
      ['GET', '/v1/batches/analytics/tokens', () => ({})],
      ['GET', '/v1/batches/analytics/live', () => ({})],
      ['GET', '/v1/events', () => ({})],
      ['GET', '/v1/me', () => ({})],
      ['GET', '/v1/projects', () => ({})],
      ['GET', '/v1/projects/alpha', () => ({})],
    ];
    // A near miss of a real key (last character changed), a random one, the admin key's twin.
    const real = keyOf('alpha');
    const nearMiss = real.slice(0, -1) + (real.endsWith('A') ? 'B' : 'A');
    const wrongKeys = [nearMiss, `besh-sk-${randomBytes(30).toString('base64url').slice(0, 40)}`, `${ADMIN_KEY}x`];
    for (const [method, path, init] of routes) {
      const none = await api(besh, path, { method, ...init() });
      expectError(none, 401, 'authentication_error', 'missing_api_key', `${method} ${path} without key`);
      // Not Bearer: as good as no key.
      const basic = await api(besh, path, { method, ...init(), headers: { authorization: `Basic ${real}` } });
      expectError(basic, 401, 'authentication_error', 'missing_api_key', `${method} ${path} with Basic`);
      expect(basic.text).not.toContain(real);
      for (const key of wrongKeys) {
        const r = await api(besh, path, { method, key, ...init() });
        expectError(r, 401, 'authentication_error', 'invalid_api_key', `${method} ${path} with a wrong key`);
        expect(r.text).not.toContain(key);
        expect(r.text).not.toContain(key.slice(8, 20));
        for (const [name, value] of r.headers) expect(`${name}: ${value}`).not.toContain(key.slice(8, 20));
      }
    }
    await rejects(keyClient(besh, nearMiss).files.list(), AuthenticationError, 401);
    // Nothing happened: alpha's objects are all there.
    expect((await t.alpha.client.batches.retrieve(t.alpha.batch)).status).toBe('completed');
    expect((await t.alpha.client.files.retrieve(t.alpha.smallInput)).id).toBe(t.alpha.smallInput);
  });

  it('/health stays open with keys on', async () => {
    const r = await api(besh, '/health');
    expect(r.status, r.text).toBe(200);
    expect(r.body.status).toBe('healthy');
  });

  it('a key revoked with `besh keys revoke` stops working at the next request', async () => {
    const before = await get('/v1/me', alpha2.key);
    expect(before.status, before.text).toBe(200);
    expect(before.body.key_id).toBe(alpha2.id);
    const stream = openEvents(besh, alpha2.key);
    expect(await stream.ready).toBe(200);
    const r = await revokeKey(dir.path, alpha2.id);
    expect(r.code, r.stderr).toBe(0);
    // An open event stream is checked again every few seconds: the server ends it.
    const ended = await Promise.race([stream.ended.then(() => true), sleep(10_000).then(() => false)]);
    await stream.stop();
    expect(ended).toBe(true);
    for (const path of ['/v1/me', '/v1/files', `/v1/files/${t.alpha.input}`, '/v1/batches']) {
      const after = await get(path, alpha2.key);
      expectError(after, 401, 'authentication_error', 'invalid_api_key', `revoked key on ${path}`);
      expect(after.text).not.toContain(alpha2.key);
    }
    // The project's other key still works; revoking twice is an error; the list shows no secret.
    expect((await get('/v1/me', keyOf('alpha'))).status).toBe(200);
    const again = await revokeKey(dir.path, alpha2.id);
    expect(again.code).toBe(2);
    const keys = await listKeys(dir.path);
    expect(keys.find((k) => k.id === alpha2.id)?.revoked_at).toEqual(expect.any(Number));
    expect(keys.find((k) => k.id === t.alpha.key.id)?.revoked_at).toBeNull();
    expect(keys.find((k) => k.id === t.alpha.key.id)?.last_used_at).toEqual(expect.any(Number));
    const listed = JSON.stringify(keys);
    for (const k of [t.alpha.key, t.beta.key, alpha2]) expect(listed).not.toContain(k.key);
  });

  it('no key appears in the server’s log', () => {
    const log = besh.output();
    expect(log.length).toBeGreaterThan(0);
    for (const k of [t.alpha.key.key, t.beta.key.key, alpha2.key, ADMIN_KEY]) expect(log).not.toContain(k);
  });
});

describe('open mode until the first key', () => {
  let mock: MockServer;
  let dir: { path: string; remove(): void };
  let besh: BeshProcess;

  beforeAll(async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 5 });
    dir = tempDir('besh-open-');
    besh = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, LOG_LEVEL: 'warn' }, { dataDir: dir.path });
  });

  afterAll(async () => {
    await besh?.stop();
    await mock?.close();
    dir?.remove();
  });

  it('works with no key at all, then a key created while it runs switches it to keys mode at once', async () => {
    // Open: no Authorization header anywhere.
    const me = await api(besh, '/v1/me');
    expect(me.status, me.text).toBe(200);
    expect(me.body).toEqual({ object: 'principal', auth: 'open', project: 'default', admin: true, key_id: null });
    const up = await api(besh, '/v1/files', { body: uploadForm(chatLines(2, { prefix: 'open' })) });
    expect(up.status, up.text).toBe(200);
    const created = await api(besh, '/v1/batches', { json: { input_file_id: up.body.id, endpoint: '/v1/chat/completions', completion_window: '24h' } });
    expect(created.status, created.text).toBe(200);
    const done = await waitDone(besh.client, created.body.id);
    expect(done.status).toBe('completed');
    const out = await api(besh, `/v1/files/${done.output_file_id}/content`);
    expect(out.status).toBe(200);
    expect(out.text).toContain('"custom_id":"open-0"');
    const list = await api(besh, '/v1/files');
    expect(ids(list.body.data)).toEqual([up.body.id, done.output_file_id].sort());

    // A key made by the CLI while the server runs closes the doors at the next request.
    const gamma = await createKey(dir.path, 'gamma');
    expectError(await api(besh, '/v1/files'), 401, 'authentication_error', 'missing_api_key', 'open → keys, no key');
    expectError(await api(besh, '/v1/me', { key: 'test-key' }), 401, 'authentication_error', 'invalid_api_key', 'open → keys, SDK placeholder key');
    await rejects(besh.client.files.list(), AuthenticationError, 401);
    const asGamma = await api(besh, '/v1/me', { key: gamma.key });
    expect(asGamma.body).toEqual({ object: 'principal', auth: 'keys', project: 'gamma', admin: false, key_id: gamma.id });
    // What was made in open mode belongs to the default project: not gamma's.
    expect((await api(besh, '/v1/files', { key: gamma.key })).body.data).toEqual([]);
    expect((await api(besh, `/v1/files/${up.body.id}`, { key: gamma.key })).status).toBe(404);
    expect((await api(besh, '/health')).status).toBe(200);

    // Revoking the last key does not reopen BESH.
    expect((await revokeKey(dir.path, gamma.id)).code).toBe(0);
    expectError(await api(besh, '/v1/files'), 401, 'authentication_error', 'missing_api_key', 'after revoking the last key');
    expectError(await api(besh, '/v1/me', { key: gamma.key }), 401, 'authentication_error', 'invalid_api_key', 'revoked last key');
  });
});
