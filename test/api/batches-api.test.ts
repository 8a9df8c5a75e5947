import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, readJsonl, upload, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { rejects } from '../helpers/sdk-errors.js';

let mock: MockServer;
let besh: BeshProcess;
let client: OpenAI;
let dir: { path: string; remove(): void };
/** A small valid chat input, reused by the tests that only need some batch. */
let chatInput: string;

beforeAll(async () => {
  mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 5 });
  dir = tempDir();
  // A short shutdown grace also bounds how long a cancel waits for hung requests.
  besh = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, BESH_SHUTDOWN_GRACE_MS: '300', LOG_LEVEL: 'warn' }, { dataDir: dir.path });
  client = besh.client;
  chatInput = await upload(client, chatLines(2, { prefix: 'shared' }), 'shared.jsonl');
});

afterAll(async () => {
  await besh?.stop();
  await mock?.close();
  dir?.remove();
});

const raw = async (path: string, init: RequestInit & { json?: unknown } = {}): Promise<{ status: number; headers: Headers; body: any }> => {
  const { json, ...rest } = init;
  const r = await fetch(`${besh.baseURL}${path}`, {
    ...rest,
    ...(json !== undefined ? { method: rest.method ?? 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) } : {}),
  });
  const text = await r.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* keep the text */
  }
  return { status: r.status, headers: r.headers, body };
};

const expectJsonHeaders = (h: Headers, label: string): void => {
  expect(h.get('content-type'), label).toMatch(/^application\/json/);
  expect(h.get('x-request-id'), label).toMatch(/^req_[0-9A-Za-z]+$/);
};


const create = (input: string, endpoint = '/v1/chat/completions', extra: Record<string, unknown> = {}) =>
  client.batches.create({ input_file_id: input, endpoint: endpoint as any, completion_window: '24h', ...extra });

const BATCH_KEYS = [
  'id',
  'object',
  'endpoint',
  'model',
  'errors',
  'input_file_id',
  'completion_window',
  'status',
  'output_file_id',
  'error_file_id',
  'created_at',
  'in_progress_at',
  'expires_at',
  'finalizing_at',
  'completed_at',
  'failed_at',
  'expired_at',
  'cancelling_at',
  'cancelled_at',
  'request_counts',
  'usage',
  'metadata',
];

describe('batch object and headers', () => {
  it('create answers a Batch with every OpenAI field', async () => {
    const t0 = Math.floor(Date.now() / 1000);
    const r = await raw('/batches', { json: { input_file_id: chatInput, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { team: 'qa' } } });
    expect(r.status).toBe(200);
    expectJsonHeaders(r.headers, 'create');
    const b = r.body;
    for (const k of BATCH_KEYS) expect(b, k).toHaveProperty(k);
    expect(b.id).toMatch(/^batch_[0-9A-Za-z]+$/);
    expect(b.object).toBe('batch');
    expect(b.endpoint).toBe('/v1/chat/completions');
    expect(b.input_file_id).toBe(chatInput);
    expect(b.completion_window).toBe('24h');
    expect(b.status).toBe('validating');
    expect(b.errors).toBeNull();
    expect(b.output_file_id).toBeNull();
    expect(b.error_file_id).toBeNull();
    expect(Number.isInteger(b.created_at)).toBe(true);
    expect(b.created_at).toBeGreaterThanOrEqual(t0 - 1);
    expect(b.expires_at).toBe(b.created_at + 86_400);
    for (const k of ['in_progress_at', 'finalizing_at', 'completed_at', 'failed_at', 'expired_at', 'cancelling_at', 'cancelled_at']) expect(b[k], k).toBeNull();
    expect(b.request_counts).toEqual({ total: 0, completed: 0, failed: 0 });
    expect(b.usage).toEqual({
      input_tokens: 0,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: 0,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: 0,
    });
    expect(b.metadata).toEqual({ team: 'qa' });

    const done = await waitDone(client, b.id);
    expect(done.status).toBe('completed');
    expect(done.model).toBe('mock-model');
    expect(done.request_counts).toEqual({ total: 2, completed: 2, failed: 0 });
    expect(done.metadata).toEqual({ team: 'qa' });
    expect(done.created_at).toBe(b.created_at);
    expect(done.expires_at).toBe(b.expires_at);
    for (const k of BATCH_KEYS) expect(done, k).toHaveProperty(k);
  });

  it('every JSON response carries content-type and x-request-id, and SDK errors expose requestID', async () => {
    const list = await raw('/batches');
    expect(list.status).toBe(200);
    expectJsonHeaders(list.headers, 'list');
    const id = list.body.data[0].id as string;
    const get = await raw(`/batches/${id}`);
    expect(get.status).toBe(200);
    expectJsonHeaders(get.headers, 'retrieve');
    expect(get.headers.get('x-request-id')).not.toBe(list.headers.get('x-request-id'));

    const notFound = await raw('/batches/batch_doesnotexist');
    expect(notFound.status).toBe(404);
    expectJsonHeaders(notFound.headers, '404');
    expect(notFound.body).toEqual({
      error: { message: "No batch found with id 'batch_doesnotexist'.", type: 'invalid_request_error', param: expect.anything(), code: expect.anything() },
    });
    const bad = await raw('/batches', { json: { endpoint: '/v1/chat/completions', completion_window: '24h' } });
    expect(bad.status).toBe(400);
    expectJsonHeaders(bad.headers, '400');
    const unknownUrl = await raw('/nothing-here');
    expect(unknownUrl.status).toBe(404);
    expectJsonHeaders(unknownUrl.headers, 'unknown url');
    expect(unknownUrl.body.error.type).toBe('invalid_request_error');

    const err = await rejects(client.batches.retrieve('batch_doesnotexist'), OpenAI.NotFoundError, 404);
    expect(err.requestID).toMatch(/^req_/);
    expect(err.requestID).toBe(err.headers?.get('x-request-id'));
    expect(err.error).toMatchObject({ message: "No batch found with id 'batch_doesnotexist'.", type: 'invalid_request_error' });

    const withId = await client.batches.retrieve(id).withResponse();
    expect(withId.request_id).toMatch(/^req_/);
  });
});

describe('POST /v1/batches parameter errors', () => {
  const base = (): Record<string, unknown> => ({ input_file_id: chatInput, endpoint: '/v1/chat/completions', completion_window: '24h' });
  const meta17 = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
  const meta16 = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, 'v']));

  it.each([
    ['bad endpoint', { endpoint: '/v1/nope' }, 'endpoint', 'invalid_value'],
    ['endpoint without /v1', { endpoint: '/chat/completions' }, 'endpoint', 'invalid_value'],
    ['missing endpoint', { endpoint: undefined }, 'endpoint', null],
    ['missing input_file_id', { input_file_id: undefined }, 'input_file_id', null],
    ['input_file_id not a string', { input_file_id: 42 }, 'input_file_id', null],
    ['missing completion_window', { completion_window: undefined }, 'completion_window', null],
    ["completion_window 'abc'", { completion_window: 'abc' }, 'completion_window', 'invalid_value'],
    ["completion_window '0h'", { completion_window: '0h' }, 'completion_window', 'invalid_value'],
    ["completion_window '31d'", { completion_window: '31d' }, 'completion_window', 'invalid_value'],
    ["completion_window '24'", { completion_window: '24' }, 'completion_window', 'invalid_value'],
    ['metadata with 17 keys', { metadata: meta17 }, 'metadata', null],
    ['metadata with a 65-char key', { metadata: { ['k'.repeat(65)]: 'v' } }, /^metadata/, null],
    ['metadata with a 513-char value', { metadata: { tags: 'v'.repeat(513) } }, /^metadata/, null],
    ['metadata with a non-string value', { metadata: { tags: 5 } }, 'metadata.tags', 'invalid_type'],
    ['metadata that is an array', { metadata: ['a'] }, 'metadata', null],
    ['output_expires_after too short', { output_expires_after: { anchor: 'created_at', seconds: 10 } }, 'output_expires_after', null],
    ['output_expires_after with another anchor', { output_expires_after: { anchor: 'completed_at', seconds: 3600 } }, 'output_expires_after', null],
  ])('%s → 400', async (_label, patch, param, code) => {
    const before = (await raw('/batches?limit=100')).body.data.length as number;
    const body = { ...base(), ...patch };
    const err = await rejects(client.batches.create(body as any), OpenAI.BadRequestError, 400);
    if (param instanceof RegExp) expect(err.param).toMatch(param);
    else expect(err.param).toBe(param);
    if (code !== null) expect(err.code).toBe(code);
    expect(err.type).toBe('invalid_request_error');
    expect(err.headers?.get('content-type')).toMatch(/^application\/json/);
    expect(err.requestID).toMatch(/^req_/);
    expect((await raw('/batches?limit=100')).body.data.length).toBe(before);
  });

  it('accepts exactly 16 metadata keys, a 64-char key, a 512-char value and null metadata', async () => {
    const a = await client.batches.create({ ...base(), metadata: meta16 } as any);
    expect(a.metadata).toEqual(meta16);
    const b = await client.batches.create({ ...base(), metadata: { ['k'.repeat(64)]: 'v'.repeat(512) } } as any);
    expect(b.metadata).toEqual({ ['k'.repeat(64)]: 'v'.repeat(512) });
    const c = await client.batches.create({ ...base(), metadata: null } as any);
    expect(c.metadata).toBeNull();
    await Promise.all([a, b, c].map((x) => waitDone(client, x.id)));
  });

  it('refuses a body that is an array or not JSON', async () => {
    const arr = await raw('/batches', { json: [base()] });
    expect(arr.status).toBe(400);
    expect(arr.body.error.type).toBe('invalid_request_error');
    expectJsonHeaders(arr.headers, 'array');
    const notJson = await raw('/batches', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"input_file_id": ' });
    expect(notJson.status).toBe(400);
    expect(notJson.body.error).toMatchObject({ type: 'invalid_request_error' });
    expect(notJson.body.error.message).toMatch(/JSON/);
    expectJsonHeaders(notJson.headers, 'invalid json');
    const empty = await raw('/batches', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '' });
    expect(empty.status).toBe(400);
    expect(empty.body.error.type).toBe('invalid_request_error');
    const huge = await raw('/batches', { json: { ...base(), metadata: { a: 'x'.repeat(2 * 1024 * 1024) } } });
    expect(huge.status).toBe(413);
    expect(huge.body.error.type).toBe('invalid_request_error');
    expectJsonHeaders(huge.headers, 'too large');
  });

  it('answers 404 for an unknown input file and 400 for an output file used as input', async () => {
    const nf = await rejects(create('file-doesnotexist'), OpenAI.NotFoundError, 404);
    expect(nf.message).toContain('file-doesnotexist');
    const nf2 = await rejects(create('not-an-id/../x'), OpenAI.NotFoundError, 404);
    expect(nf2.status).toBe(404);

    const b = await waitDone(client, (await create(chatInput)).id);
    expect(b.output_file_id).toMatch(/^file-/);
    const out = await client.files.retrieve(b.output_file_id!);
    expect(out.purpose).toBe('batch_output');
    const err = await rejects(create(b.output_file_id!), OpenAI.BadRequestError, 400);
    expect(err.param).toBe('input_file_id');
  });

  it.each([
    ['1h', 3600],
    ['7d', 7 * 86_400],
    ['90m', 90 * 60],
    ['30d', 30 * 86_400],
  ])("completion_window '%s' is accepted with the matching expires_at", async (w, secs) => {
    const b = await client.batches.create({ ...base(), completion_window: w } as any);
    expect(b.completion_window).toBe(w);
    expect(b.expires_at).toBe(b.created_at + secs);
    const got = await client.batches.retrieve(b.id);
    expect(got.expires_at).toBe(b.created_at + secs);
    expect((await waitDone(client, b.id)).status).toBe('completed');
  });
});

describe('GET /v1/batches', () => {
  const mine: string[] = []; // oldest first

  beforeAll(async () => {
    const input = await upload(client, chatLines(1, { prefix: 'page' }), 'page.jsonl');
    for (let i = 0; i < 45; i++) mine.push((await create(input)).id);
    await Promise.all(mine.map((id) => waitDone(client, id)));
  });

  async function everything(): Promise<string[]> {
    const ids: string[] = [];
    let after = '';
    for (;;) {
      const r = await raw(`/batches?limit=100${after ? `&after=${after}` : ''}`);
      expect(r.status).toBe(200);
      ids.push(...r.body.data.map((b: any) => b.id));
      if (!r.body.has_more) return ids;
      after = r.body.last_id;
    }
  }

  it('lists newest first with exact has_more, first_id, last_id, after and limit', async () => {
    const all = await everything();
    expect(new Set(all).size).toBe(all.length);
    expect(all.slice(0, 45)).toEqual([...mine].reverse());
    const n = all.length;

    const def = await raw('/batches');
    expect(def.body.object).toBe('list');
    expect(def.body.data.map((b: any) => b.id)).toEqual(all.slice(0, 20));
    expect(def.body).toMatchObject({ first_id: all[0], last_id: all[19], has_more: true });

    const p2 = await raw(`/batches?limit=7&after=${all[4]}`);
    expect(p2.body.data.map((b: any) => b.id)).toEqual(all.slice(5, 12));
    expect(p2.body).toMatchObject({ first_id: all[5], last_id: all[11], has_more: true });

    const last = await raw(`/batches?limit=3&after=${all[n - 4]}`);
    expect(last.body.data.map((b: any) => b.id)).toEqual(all.slice(n - 3));
    expect(last.body.has_more).toBe(false);

    const end = await raw(`/batches?after=${all[n - 1]}`);
    expect(end.status).toBe(200);
    expect(end.body).toEqual({ object: 'list', data: [], first_id: null, last_id: null, has_more: false });

    const max = await raw('/batches?limit=100');
    expect(max.body.data).toHaveLength(Math.min(100, n));
    expect(max.body.has_more).toBe(n > 100);
    const one = await raw('/batches?limit=1');
    expect(one.body.data.map((b: any) => b.id)).toEqual([all[0]]);
    expect(one.body.has_more).toBe(true);
    for (const b of def.body.data) for (const k of BATCH_KEYS) expect(b, k).toHaveProperty(k);
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=-1', 'limit'],
    ['limit=101', 'limit'],
    ['limit=abc', 'limit'],
    ['limit=1.5', 'limit'],
    ['after=garbage', 'after'],
    ['after=file-abc', 'after'],
    ['after=batch_%2F..%2F', 'after'],
  ])('%s → 400 with param', async (q, param) => {
    const r = await raw(`/batches?${q}`);
    expect(r.status).toBe(400);
    expectJsonHeaders(r.headers, q);
    expect(r.body.error).toMatchObject({ type: 'invalid_request_error', param });
  });

  it('SDK auto-pagination with limit 10 visits each batch once, newest first', async () => {
    const all = await everything();
    const seen: string[] = [];
    for await (const b of client.batches.list({ limit: 10 })) seen.push(b.id);
    expect(seen).toEqual(all);
    const page = await client.batches.list({ limit: 10 });
    expect(page.data.map((b) => b.id)).toEqual(all.slice(0, 10));
    expect(page.hasNextPage()).toBe(true);
  });
});

describe('cancel and delete', () => {
  it('cancel of a completed batch → 409 with x-should-retry: false', async () => {
    const b = await waitDone(client, (await create(chatInput)).id);
    expect(b.status).toBe('completed');
    const err = await rejects(client.batches.cancel(b.id), OpenAI.ConflictError, 409);
    expect(err.error).toMatchObject({ message: "Cannot cancel a batch with status 'completed'.", type: 'invalid_request_error' });
    expect(err.message).toContain("Cannot cancel a batch with status 'completed'.");
    expect(err.headers?.get('x-should-retry')).toBe('false');
    expect(err.requestID).toMatch(/^req_/);
    expect((await client.batches.retrieve(b.id)).status).toBe('completed');
    // The SDK honours x-should-retry: false even with retries on: only one request is made.
    let calls = 0;
    const counting: typeof fetch = (input, init) => {
      calls++;
      return fetch(input, init);
    };
    const retrying = new OpenAI({ baseURL: besh.baseURL, apiKey: 'k', maxRetries: 2, fetch: counting });
    await rejects(retrying.batches.cancel(b.id), OpenAI.ConflictError, 409);
    expect(calls).toBe(1);
  });

  it('cancel of a failed batch → 409', async () => {
    const bad = await upload(client, `${JSON.stringify({ custom_id: 'x', method: 'POST', url: '/v1/embeddings', body: { model: 'm' } })}\n`, 'bad-url.jsonl');
    const b = await waitDone(client, (await create(bad)).id);
    expect(b.status).toBe('failed');
    const err = await rejects(client.batches.cancel(b.id), OpenAI.ConflictError, 409);
    expect(err.error).toMatchObject({ message: "Cannot cancel a batch with status 'failed'." });
    expect(err.headers?.get('x-should-retry')).toBe('false');
  });

  it('cancels a running batch; cancelling a cancelled batch answers 200', async () => {
    const input = await upload(client, chatLines(6, { prefix: 'hang', marker: () => 'MOCK_HANG' }), 'hang.jsonl');
    const b = await create(input);
    await waitFor(client, b.id, (x) => x.status === 'in_progress');
    const c = await client.batches.cancel(b.id);
    expect(['cancelling', 'cancelled']).toContain(c.status);
    expect(Number.isInteger(c.cancelling_at)).toBe(true);
    const done = await waitDone(client, b.id, 20_000);
    expect(done.status).toBe('cancelled');
    expect(done.cancelled_at).toBeGreaterThanOrEqual(done.cancelling_at!);
    expect(done.completed_at).toBeNull();
    const again = await client.batches.cancel(b.id);
    expect(again.status).toBe('cancelled');
    expect(again.cancelled_at).toBe(done.cancelled_at);
    const r = await raw(`/batches/${b.id}/cancel`, { method: 'POST' });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('cancelled');
  });

  it('cancel of an unknown batch → 404', async () => {
    await rejects(client.batches.cancel('batch_doesnotexist'), OpenAI.NotFoundError, 404);
  });

  it('weird batch ids answer a 404 envelope on retrieve, cancel and delete', async () => {
    for (const id of ['%2e%2e', 'batch_%00', 'b'.repeat(10_240), 'batch_abc%2F..', '%E0%A4%A', chatInput]) {
      for (const [method, suffix] of [
        ['GET', ''],
        ['POST', '/cancel'],
        ['DELETE', ''],
      ] as const) {
        const r = await raw(`/batches/${id}${suffix}`, { method });
        const label = `${method} /batches/${id.slice(0, 30)}${suffix}`;
        expect(r.status, label).toBe(404);
        expectJsonHeaders(r.headers, label);
        expect(r.body.error, label).toMatchObject({ type: 'invalid_request_error' });
      }
    }
  });

  it('cancel right after create ends cancelled without finishing the requests', async () => {
    const input = await upload(client, chatLines(20, { prefix: 'early', marker: () => 'MOCK_HANG' }), 'early.jsonl');
    const b = await create(input);
    const c = await client.batches.cancel(b.id);
    expect(['cancelling', 'cancelled']).toContain(c.status);
    const done = await waitDone(client, b.id, 20_000);
    expect(done.status).toBe('cancelled');
    expect(done.request_counts!.completed).toBe(0);
    expect(done.output_file_id).toBeNull();
  });

  it('DELETE /v1/batches/:id removes the batch and its output and error files', async () => {
    const input = await upload(client, chatLines(4, { prefix: 'del', marker: (i) => (i === 1 ? 'MOCK_FAIL_400' : undefined) }), 'del.jsonl');
    const b = await waitDone(client, (await create(input)).id);
    expect(b.status).toBe('completed');
    expect(b.request_counts).toEqual({ total: 4, completed: 3, failed: 1 });
    const out = b.output_file_id!;
    const errf = b.error_file_id!;
    expect(out).toMatch(/^file-/);
    expect(errf).toMatch(/^file-/);
    expect((await besh.listBlobs(`batches/${b.id}/`)).length).toBeGreaterThan(0);

    const del = await raw(`/batches/${b.id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expectJsonHeaders(del.headers, 'delete');
    expect(del.body).toMatchObject({ id: b.id, deleted: true });

    await rejects(client.batches.retrieve(b.id), OpenAI.NotFoundError, 404);
    for (const f of [out, errf]) {
      await rejects(client.files.retrieve(f), OpenAI.NotFoundError, 404);
      await rejects(client.files.content(f), OpenAI.NotFoundError, 404);
    }
    expect(await besh.listBlobs(`batches/${b.id}/`)).toEqual([]);
    const listed: string[] = [];
    for await (const x of client.batches.list({ limit: 100 })) listed.push(x.id);
    expect(listed).not.toContain(b.id);
    // The input file is the user's and stays.
    expect((await client.files.retrieve(input)).id).toBe(input);

    const again = await raw(`/batches/${b.id}`, { method: 'DELETE' });
    expect(again.status).toBe(404);
    expect(again.body.error.type).toBe('invalid_request_error');
    const unknown = await raw('/batches/batch_doesnotexist', { method: 'DELETE' });
    expect(unknown.status).toBe(404);
    expectJsonHeaders(unknown.headers, 'delete unknown');
  });

  it('DELETE /v1/files/:id of an output file removes every blob that held its lines, and only those', async () => {
    const input = await upload(client, chatLines(6, { prefix: 'delout', marker: (i) => (i === 2 ? 'MOCK_FAIL_400' : undefined) }), 'delout.jsonl');
    const b = await waitDone(client, (await create(input)).id);
    expect(b.request_counts).toEqual({ total: 6, completed: 5, failed: 1 });
    const errorsBefore = await (await client.files.content(b.error_file_id!)).text();
    await client.files.delete(b.output_file_id!);
    const left = await besh.listBlobs(`batches/${b.id}/`);
    expect(left.filter((k) => k.endsWith('/output.jsonl') || k.includes('/segments/output-'))).toEqual([]);
    expect(left.some((k) => k.endsWith('/errors.jsonl'))).toBe(true);
    expect(await (await client.files.content(b.error_file_id!)).text()).toBe(errorsBefore);
    await rejects(client.files.content(b.output_file_id!), OpenAI.NotFoundError, 404);
  });
});

describe('lifecycle on the core endpoints', () => {
  type Usage = { input: number; output: number; total: number };
  const sumUsage = (lines: Array<Record<string, any>>): Usage =>
    lines.reduce<Usage>(
      (acc, l) => {
        const u = l.response.body.usage;
        return { input: acc.input + (u.prompt_tokens ?? 0), output: acc.output + (u.completion_tokens ?? 0), total: acc.total + u.total_tokens };
      },
      { input: 0, output: 0, total: 0 },
    );

  const cases = [
    {
      endpoint: '/v1/chat/completions',
      line: (i: number, text: string) => ({ model: 'mock-model', messages: [{ role: 'user', content: `chat ${i} ${text}` }], max_tokens: 8 }),
      check: (body: any) => expect(body.choices[0].message.content).toEqual(expect.any(String)),
    },
    {
      endpoint: '/v1/completions',
      line: (i: number, text: string) => ({ model: 'mock-model', prompt: `complete ${i} ${text}`, max_tokens: 8 }),
      check: (body: any) => expect(body.choices[0].text).toEqual(expect.any(String)),
    },
    {
      endpoint: '/v1/embeddings',
      line: (i: number, text: string) => ({ model: 'mock-model', input: `embed ${i} ${text}` }),
      check: (body: any) => {
        expect(body.data[0].embedding.length).toBeGreaterThan(0);
        expect(body.usage.prompt_tokens).toBeGreaterThan(0);
      },
    },
  ];

  it.each(cases)('$endpoint: completed, exact counts, usage, output and error lines', async ({ endpoint, line, check }) => {
    const n = 12;
    const failing = new Set([3, 8]);
    const text = Array.from({ length: n }, (_, i) =>
      JSON.stringify({ custom_id: `${endpoint}-${i}`, method: 'POST', url: endpoint, body: line(i, failing.has(i) ? 'MOCK_FAIL_400' : 'ok') }),
    ).join('\n');
    const input = await upload(client, `${text}\n`, 'life.jsonl');
    const created = await create(input, endpoint);
    expect(created.endpoint).toBe(endpoint);
    const b = await waitDone(client, created.id);

    expect(b.status).toBe('completed');
    expect(b.errors).toBeNull();
    expect(b.model).toBe('mock-model');
    expect(b.request_counts).toEqual({ total: n, completed: n - failing.size, failed: failing.size });
    expect(b.in_progress_at).toBeGreaterThanOrEqual(b.created_at);
    expect(b.finalizing_at).toBeGreaterThanOrEqual(b.in_progress_at!);
    expect(b.completed_at).toBeGreaterThanOrEqual(b.finalizing_at!);
    for (const k of ['failed_at', 'expired_at', 'cancelling_at', 'cancelled_at'] as const) expect(b[k], k).toBeNull();

    const outFile = await client.files.retrieve(b.output_file_id!);
    expect(outFile.purpose).toBe('batch_output');
    const errFile = await client.files.retrieve(b.error_file_id!);
    expect(errFile.purpose).toBe('batch_output');

    const out = await readJsonl(client, b.output_file_id);
    const errs = await readJsonl(client, b.error_file_id);
    expect(out).toHaveLength(n - failing.size);
    expect(errs).toHaveLength(failing.size);
    const expectedOk = Array.from({ length: n }, (_, i) => i).filter((i) => !failing.has(i)).map((i) => `${endpoint}-${i}`);
    expect(out.map((l) => l.custom_id).sort()).toEqual([...expectedOk].sort());
    expect(errs.map((l) => l.custom_id).sort()).toEqual([...failing].map((i) => `${endpoint}-${i}`).sort());
    const reqIds = new Set([...out, ...errs].map((l) => l.id));
    expect(reqIds.size).toBe(n);

    for (const l of out) {
      expect(Object.keys(l).sort()).toEqual(['custom_id', 'error', 'id', 'response']);
      expect(l.id).toMatch(/^batch_req_[0-9A-Za-z]+$/);
      expect(l.error).toBeNull();
      expect(l.response.status_code).toBe(200);
      expect(l.response.request_id).toEqual(expect.any(String));
      expect(l.response.request_id.length).toBeGreaterThan(0);
      check(l.response.body);
    }
    for (const l of errs) {
      expect(l.id).toMatch(/^batch_req_/);
      expect(l.error).toBeNull();
      expect(l.response.status_code).toBe(400);
      expect(l.response.body.error).toMatchObject({ type: 'invalid_request_error', code: 'mock_fail' });
      expect(l.response.body.error.message).toContain('MOCK_FAIL_400');
    }

    const sum = sumUsage(out);
    expect(sum.total).toBeGreaterThan(0);
    expect(b.usage!.input_tokens).toBe(sum.input);
    expect(b.usage!.output_tokens).toBe(sum.output);
    expect(b.usage!.total_tokens).toBe(sum.total);
    expect(b.usage!.input_tokens).toBeGreaterThan(0);
    if (endpoint !== '/v1/embeddings') expect(b.usage!.output_tokens).toBeGreaterThan(0);
    expect(b.usage!.input_tokens_details.cached_tokens).toBe(0);
    expect(b.usage!.output_tokens_details.reasoning_tokens).toBe(0);

    // Each request reached the upstream exactly once.
    const received = mock.stats().received;
    for (let i = 0; i < n; i++) expect(received[`${endpoint}-${i}`], `${endpoint}-${i}`).toBe(1);
  });

  it('a batch where every line fails ends completed with output_file_id null', async () => {
    const input = await upload(client, chatLines(5, { prefix: 'allfail', marker: () => 'MOCK_FAIL_400' }), 'allfail.jsonl');
    const b = await waitDone(client, (await create(input)).id);
    expect(b.status).toBe('completed');
    expect(b.output_file_id).toBeNull();
    expect(b.error_file_id).toMatch(/^file-/);
    expect(b.request_counts).toEqual({ total: 5, completed: 0, failed: 5 });
    expect(b.failed_at).toBeNull();
    expect(b.usage!.total_tokens).toBe(0);
    const errs = await readJsonl(client, b.error_file_id);
    expect(errs.map((l) => l.custom_id).sort()).toEqual(['allfail-0', 'allfail-1', 'allfail-2', 'allfail-3', 'allfail-4']);
    for (const l of errs) expect(l.response.status_code).toBe(400);
  });
});
