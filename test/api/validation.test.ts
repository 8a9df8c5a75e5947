import { existsSync } from 'node:fs';
import { join } from 'node:path';

import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, readJsonl, upload, waitDone } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';

const MAX_REQUESTS = 5;
const MAX_ERRORS = 3;

let mock: MockServer;
let besh: BeshProcess;
let limited: BeshProcess;
const dirs: Array<{ path: string; remove(): void }> = [];

beforeAll(async () => {
  mock = await startMockServer({ host: '127.0.0.1', port: 0 });
  const d1 = tempDir();
  const d2 = tempDir();
  dirs.push(d1, d2);
  [besh, limited] = await Promise.all([
    startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, LOG_LEVEL: 'warn' }, { dataDir: d1.path }),
    startBesh(
      {
        OPENAI_API_BASE: `${mock.url}/v1`,
        BESH_MAX_REQUESTS_PER_BATCH: String(MAX_REQUESTS),
        BESH_MAX_VALIDATION_ERRORS: String(MAX_ERRORS),
        LOG_LEVEL: 'warn',
      },
      { dataDir: d2.path },
    ),
  ]);
});

afterAll(async () => {
  await Promise.all([besh?.stop(), limited?.stop()]);
  await mock?.close();
  for (const d of dirs) d.remove();
});

type Batch = Awaited<ReturnType<OpenAI['batches']['retrieve']>>;

const ENDPOINT = '/v1/chat/completions';
const good = (id: string): Record<string, unknown> => ({
  custom_id: id,
  method: 'POST',
  url: ENDPOINT,
  body: { model: 'mock-model', messages: [{ role: 'user', content: `hello ${id}` }] },
});
const without = (o: Record<string, unknown>, key: string): Record<string, unknown> => {
  const copy = { ...o };
  delete copy[key];
  return copy;
};
const jsonl = (lines: unknown[]): string => `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`;

/** Uploads the lines, runs a batch on them and returns it once terminal. */
async function run(p: BeshProcess, lines: unknown[], endpoint = ENDPOINT): Promise<Batch> {
  const input = await upload(p.client, jsonl(lines), 'v.jsonl');
  const created = await p.client.batches.create({ input_file_id: input, endpoint: endpoint as any, completion_window: '24h' });
  expect(created.status).toBe('validating');
  return waitDone(p.client, created.id, 30_000);
}

/** The shape every validation failure must have. */
function expectValidationFailure(p: BeshProcess, b: Batch): void {
  expect(b.status).toBe('failed');
  expect(Number.isInteger(b.failed_at)).toBe(true);
  expect(b.failed_at).toBeGreaterThanOrEqual(b.created_at);
  expect(b.in_progress_at).toBeNull();
  expect(b.completed_at).toBeNull();
  expect(b.output_file_id).toBeNull();
  expect(b.error_file_id).toBeNull();
  expect(b.request_counts?.completed).toBe(0);
  expect(b.request_counts?.failed).toBe(0);
  expect(b.errors?.object).toBe('list');
  expect(b.errors?.data?.length).toBeGreaterThan(0);
  for (const e of b.errors!.data!) {
    expect(Object.keys(e).sort()).toEqual(['code', 'line', 'message', 'param']);
    expect(typeof e.code).toBe('string');
    expect(typeof e.message).toBe('string');
    expect(e.message!.length).toBeGreaterThan(0);
  }
  expect(existsSync(join(p.dataDir, 'batches', b.id))).toBe(false);
}

describe('line validation: the batch fails with errors.data naming each bad line', () => {
  let before: number;
  beforeAll(() => {
    before = mock.stats().total_requests;
  });

  it.each([
    ['missing custom_id', [good('a'), without(good('b'), 'custom_id'), good('c')], 'missing_required_parameter', 'custom_id', 2],
    ['missing method', [without(good('a'), 'method')], 'missing_required_parameter', 'method', 1],
    ['missing url', [good('a'), good('b'), without(good('c'), 'url')], 'missing_required_parameter', 'url', 3],
    ['missing body', [good('a'), without(good('b'), 'body')], 'missing_required_parameter', 'body', 2],
    ['duplicate custom_id (the second occurrence)', [good('a'), good('b'), good('a'), good('c')], 'duplicate_custom_id', 'custom_id', 3],
    ['method GET', [good('a'), { ...good('b'), method: 'GET' }], null, 'method', 2],
    ['url other than the endpoint', [{ ...good('a'), url: '/v1/embeddings' }, good('b')], 'invalid_url', 'url', 1],
    ['url without /v1', [good('a'), { ...good('b'), url: '/chat/completions' }], 'invalid_url', 'url', 2],
    ['body without model', [good('a'), { ...good('b'), body: { messages: [] } }], null, 'body.model', 2],
    ['stream: true', [good('a'), good('b'), { ...good('c'), body: { ...(good('c').body as object), stream: true } }], 'streaming_unsupported', 'body.stream', 3],
  ] as const)('%s', async (_label, lines, code, param, line) => {
    const b = await run(besh, [...lines]);
    expectValidationFailure(besh, b);
    expect(b.errors!.data).toHaveLength(1);
    const e = b.errors!.data![0]!;
    expect(e.param).toBe(param);
    expect(e.line).toBe(line);
    if (code !== null) expect(e.code).toBe(code);
    else expect(e.code).toMatch(/^[a-z_]+$/);
  });

  it('reports several bad lines, one error each, with the right line numbers', async () => {
    const lines = [
      good('ok-1'),
      without(good('x1'), 'custom_id'), // 2
      good('ok-2'),
      { ...good('x2'), url: '/v1/completions' }, // 4
      good('ok-3'),
      good('ok-1'), // 6: duplicate
      { ...good('x3'), body: { ...(good('x3').body as object), stream: true } }, // 7
      without(good('x4'), 'body'), // 8
      good('ok-4'),
    ];
    const b = await run(besh, lines);
    expectValidationFailure(besh, b);
    const got = b.errors!.data!.map((e) => ({ code: e.code, param: e.param, line: e.line }));
    expect(got).toEqual([
      { code: 'missing_required_parameter', param: 'custom_id', line: 2 },
      { code: 'invalid_url', param: 'url', line: 4 },
      { code: 'duplicate_custom_id', param: 'custom_id', line: 6 },
      { code: 'streaming_unsupported', param: 'body.stream', line: 7 },
      { code: 'missing_required_parameter', param: 'body', line: 8 },
    ]);
  });

  it('counts lines as in the file: CRLF and BOM do not shift them', async () => {
    const text = `\ufeff${[good('a'), good('b'), without(good('c'), 'method')].map((l) => JSON.stringify(l)).join('\r\n')}\r\n`;
    const input = await upload(besh.client, text, 'crlf.jsonl');
    const b = await waitDone(besh.client, (await besh.client.batches.create({ input_file_id: input, endpoint: ENDPOINT, completion_window: '24h' })).id);
    expectValidationFailure(besh, b);
    expect(b.errors!.data!.map((e) => [e.param, e.line])).toEqual([['method', 3]]);
  });

  it('sent nothing upstream for any failed batch', () => {
    expect(mock.stats().total_requests).toBe(before);
  });

  it('a valid file on the same server completes (control)', async () => {
    const b = await run(besh, [good('a'), good('b'), good('c')]);
    expect(b.status).toBe('completed');
    expect(b.errors).toBeNull();
    expect(b.failed_at).toBeNull();
    expect(b.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    expect((await readJsonl(besh.client, b.output_file_id)).map((l) => l.custom_id).sort()).toEqual(['a', 'b', 'c']);
  });
});

describe('limits', () => {
  it(`BESH_MAX_REQUESTS_PER_BATCH: ${MAX_REQUESTS} requests pass, ${MAX_REQUESTS + 1} fail the batch`, async () => {
    const okText = chatLines(MAX_REQUESTS, { prefix: 'max' });
    const okInput = await upload(limited.client, okText, 'ok.jsonl');
    const ok = await waitDone(limited.client, (await limited.client.batches.create({ input_file_id: okInput, endpoint: ENDPOINT, completion_window: '24h' })).id);
    expect(ok.status).toBe('completed');
    expect(ok.request_counts).toEqual({ total: MAX_REQUESTS, completed: MAX_REQUESTS, failed: 0 });

    const sentBefore = mock.stats().total_requests;
    const b = await run(limited, JSON.parse(`[${chatLines(MAX_REQUESTS + 1, { prefix: 'over' }).trim().split('\n').join(',')}]`));
    expectValidationFailure(limited, b);
    expect(b.errors!.data).toHaveLength(1);
    const e = b.errors!.data![0]!;
    expect(e.message).toContain(String(MAX_REQUESTS));
    expect(e.message).toMatch(/BESH_MAX_REQUESTS_PER_BATCH|at most/);
    expect(e.code).toMatch(/^[a-z_]+$/);
    expect(e.line).toBeNull();
    expect(mock.stats().total_requests).toBe(sentBefore);
  });

  it('BESH_MAX_VALIDATION_ERRORS caps the error list', async () => {
    const lines = Array.from({ length: 10 }, (_, i) => ({ ...good(`bad-${i}`), url: '/v1/embeddings' }));
    const b = await run(limited, lines);
    expectValidationFailure(limited, b);
    expect(b.errors!.data).toHaveLength(MAX_ERRORS);
    expect(b.errors!.data!.map((e) => [e.code, e.line])).toEqual([
      ['invalid_url', 1],
      ['invalid_url', 2],
      ['invalid_url', 3],
    ]);

    // The same file on the server with the default cap reports every line.
    const all = await run(besh, lines);
    expectValidationFailure(besh, all);
    expect(all.errors!.data!.map((e) => e.line)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});
