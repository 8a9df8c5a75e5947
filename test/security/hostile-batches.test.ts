/**
 * Hostile input corpus, part 2: the batch routes. Bad ids, bodies, parameters and lists end in a
 * clear 4xx with OpenAI's envelope; racing a running batch (deleting its input, cancelling twice,
 * deleting it) is refused or handled cleanly; bad lines fail the batch naming the line; the
 * server keeps serving throughout.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';

import type { MockServer } from '../../src/mock/index.js';
import { chatLines, readJsonl, upload, waitDone, waitFor } from '../helpers/batches.js';
import type { BeshProcess } from '../helpers/besh-process.js';
import { call, expectEnvelope, expectServing, postText, type RawAnswer } from '../helpers/raw-http.js';
import { rejects } from '../helpers/sdk-errors.js';
import { stackFactory } from '../helpers/stack.js';

const setup = stackFactory('besh-hostile-batches-');
let mock: MockServer;
let besh: BeshProcess;
let client: OpenAI;
/** A valid input file, for the cases that only need some batch. */
let input: string;
/** The output file of a finished batch (purpose batch_output). */
let outputFile: string;

beforeAll(async () => {
  // 100 ms per request and 2 workers: a 16-line batch runs for about a second.
  ({ mock, besh, client } = await setup({ latencyMs: 100 }, { MAX_WORKERS: '2', BESH_SHUTDOWN_GRACE_MS: '500' }));
  input = await upload(client, chatLines(1, { prefix: 'shared' }), 'shared.jsonl');
  const done = await waitDone(client, (await create(input)).id, 20_000);
  expect(done.status).toBe('completed');
  outputFile = done.output_file_id!;
});

const create = (inputFileId: string) => client.batches.create({ input_file_id: inputFileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
const valid = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h', ...extra });
const postBatch = (body: unknown): Promise<RawAnswer> => postText(besh, '/v1/batches', JSON.stringify(body));
const batchIds = async (): Promise<string[]> => {
  const ids: string[] = [];
  for await (const b of client.batches.list({ limit: 100 })) ids.push(b.id);
  return ids.sort();
};

describe('hostile ids on the batch routes → 404 envelope', () => {
  const ids: Array<[label: string, id: string]> = [
    ['../', '..%2F..%2Fbesh.sqlite'],
    ['%2e%2e', '%2e%2e'],
    ['%2e%2e/%2e%2e', '%2e%2e%2F%2e%2e%2Fetc%2Fpasswd'],
    ['a NUL byte', 'batch_abc%00'],
    ['a lone NUL', '%00'],
    ['10 KB of characters', 'b'.repeat(10 * 1024)],
    ['10 KB after the prefix', `batch_${'A'.repeat(10 * 1024)}`],
    ['bad percent-encoding', 'batch_%zz%E0%A4%A'],
    ['a file id', 'file-abc'],
  ];
  const routes: Array<[method: string, suffix: string]> = [
    ['GET', ''],
    ['POST', '/cancel'],
    ['DELETE', ''],
  ];

  it.each(ids)('%s', async (_label, id) => {
    const before = await batchIds();
    for (const [method, suffix] of routes) {
      const r = await call(besh, `/v1/batches/${id}${suffix}`, { method });
      const label = `${method} /v1/batches/${id.slice(0, 30)}${suffix}`;
      expect(['batch_not_found', 'unknown_url'], label).toContain(r.body?.error?.code);
      expectEnvelope(r, 404, r.body.error.code, r.body.error.code === 'batch_not_found' ? /No batch found with id/ : /Unknown request URL/, undefined, label);
      expect(r.body.error.message.length, label).toBeLessThan(400);
      // eslint-disable-next-line no-control-regex
      expect(r.body.error.message, label).not.toMatch(/[\u0000-\u001f]/);
    }
    expect(await batchIds()).toEqual(before);
  });

  it('still serves after the hostile ids', async () => {
    await expectServing(besh);
  });
});

describe('POST /v1/batches bodies that are not what they should be', () => {
  const notObject = /must be a JSON object/;
  const cases: Array<[label: string, send: () => Promise<RawAnswer>, status: number, code: string, message: RegExp, param: string | null]> = [
    ['a JSON array', () => postText(besh, '/v1/batches', JSON.stringify([valid()])), 400, 'invalid_type', notObject, null],
    ['a JSON string', () => postText(besh, '/v1/batches', '"batch please"'), 400, 'invalid_type', notObject, null],
    ['a JSON number', () => postText(besh, '/v1/batches', '42'), 400, 'invalid_type', notObject, null],
    ['JSON null', () => postText(besh, '/v1/batches', 'null'), 400, 'invalid_type', notObject, null],
    ['JSON true', () => postText(besh, '/v1/batches', 'true'), 400, 'invalid_type', notObject, null],
    ['no body at all', () => postText(besh, '/v1/batches', ''), 400, 'invalid_type', notObject, null],
    ['broken JSON', () => postText(besh, '/v1/batches', '{"input_file_id": "file-'), 400, 'invalid_json', /not valid JSON/, null],
    ['a body over the 1 MB limit', () => postBatch(valid({ metadata: { k: 'v'.repeat(2 * 1024 * 1024) } })), 413, 'request_too_large', /too large/, null],
    ['a text/plain body', () => postText(besh, '/v1/batches', JSON.stringify(valid()), 'text/plain'), 400, 'invalid_type', /JSON object sent as application\/json/, null],
    ['an urlencoded body', () => postText(besh, '/v1/batches', 'input_file_id=file-x&endpoint=/v1/chat/completions', 'application/x-www-form-urlencoded'), 415, 'invalid_content_type', /Content-Type 'application\/x-www-form-urlencoded'.*application\/json/, null],
    ['an XML body', () => postText(besh, '/v1/batches', '<batch/>', 'application/xml'), 415, 'invalid_content_type', /Content-Type 'application\/xml'/, null],
    ['input_file_id a number', () => postBatch(valid({ input_file_id: 7 })), 400, 'invalid_type', /'input_file_id'/, 'input_file_id'],
    ['input_file_id missing', () => postBatch(valid({ input_file_id: undefined })), 400, 'missing_required_parameter', /'input_file_id'/, 'input_file_id'],
    ['an unknown endpoint', () => postBatch(valid({ endpoint: '/v1/../../admin' })), 400, 'invalid_value', /Supported values/, 'endpoint'],
    ['a completion_window of 0s', () => postBatch(valid({ completion_window: '0s' })), 400, 'invalid_value', /between 1s and 30d/, 'completion_window'],
    ['a completion_window of 31d', () => postBatch(valid({ completion_window: '31d' })), 400, 'invalid_value', /between 1s and 30d/, 'completion_window'],
    ['a completion_window with a newline', () => postBatch(valid({ completion_window: '24h\n' })), 400, 'invalid_value', /'24h\?'/, 'completion_window'],
    ['17 metadata keys', () => postBatch(valid({ metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) })), 400, 'invalid_value', /at most 16 keys/, 'metadata'],
    ['a 65-character metadata key', () => postBatch(valid({ metadata: { ['k'.repeat(65)]: 'v' } })), 400, 'invalid_value', /longer than 64 characters/, 'metadata'],
    ['a 513-character metadata value', () => postBatch(valid({ metadata: { k: 'v'.repeat(513) } })), 400, 'invalid_value', /at most 512 characters/, 'metadata.k'],
    ['a number as a metadata value', () => postBatch(valid({ metadata: { n: 1 } })), 400, 'invalid_type', /'metadata\.n'.*string/, 'metadata.n'],
    ['null as a metadata value', () => postBatch(valid({ metadata: { n: null } })), 400, 'invalid_type', /'metadata\.n'.*string/, 'metadata.n'],
    ['an object as a metadata value', () => postBatch(valid({ metadata: { o: { deep: 'x' } } })), 400, 'invalid_type', /'metadata\.o'.*string/, 'metadata.o'],
    ['metadata an array', () => postBatch(valid({ metadata: ['a', 'b'] })), 400, 'invalid_type', /'metadata'.*object/, 'metadata'],
    ['metadata a string', () => postBatch(valid({ metadata: 'k=v' })), 400, 'invalid_type', /'metadata'.*object/, 'metadata'],
    ['a control-character metadata key that is too long', () => postBatch(valid({ metadata: { [`\u0000${'x'.repeat(70)}`]: 'v' } })), 400, 'invalid_value', /key '\?x+…'/, 'metadata'],
    ['output_expires_after out of range', () => postBatch(valid({ output_expires_after: { anchor: 'created_at', seconds: 1 } })), 400, 'invalid_value', /3600\.\.2592000/, 'output_expires_after'],
    ['an input_file_id with ../', () => postBatch(valid({ input_file_id: '../../besh.sqlite' })), 404, 'file_not_found', /No such File object: \.\.\/\.\.\/besh\.sqlite/, 'input_file_id'],
    ['an input_file_id of 10 KB', () => postBatch(valid({ input_file_id: `file-${'z'.repeat(10 * 1024)}` })), 404, 'file_not_found', /No such File object: file-z+…$/, 'input_file_id'],
    ['an input_file_id with a NUL', () => postBatch(valid({ input_file_id: 'file-\u0000' })), 404, 'file_not_found', /No such File object: file-\?/, 'input_file_id'],
  ];

  it.each(cases)('%s', async (_label, send, status, code, message, param) => {
    const before = await batchIds();
    const r = await send();
    expectEnvelope(r, status, code, message, param);
    expect(await batchIds()).toEqual(before);
  });

  it('a batch from an output file (purpose batch_output) → 400 invalid_file_purpose', async () => {
    const before = await batchIds();
    const r = await postBatch(valid({ input_file_id: outputFile }));
    expectEnvelope(r, 400, 'invalid_file_purpose', new RegExp(`${outputFile} has purpose 'batch_output'`), 'input_file_id');
    const sdk = await rejects(create(outputFile), OpenAI.BadRequestError, 400);
    expect(sdk.code).toBe('invalid_file_purpose');
    expect(await batchIds()).toEqual(before);
  });

  it('the limits themselves are accepted: 16 keys, a 64-character key, a 512-character value, __proto__ kept as data', async () => {
    const metadata: Record<string, string> = Object.fromEntries(Array.from({ length: 14 }, (_, i) => [`k${i}`, 'v']));
    metadata['k'.repeat(64)] = 'v'.repeat(512);
    const r = await postText(besh, '/v1/batches', JSON.stringify(valid({ metadata })).replace('"metadata":{', '"metadata":{"__proto__":"x",'));
    expect(r.status, r.text).toBe(200);
    expect(Object.keys(r.body.metadata)).toHaveLength(16);
    expect(Object.prototype.hasOwnProperty.call(r.body.metadata, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    await waitDone(client, r.body.id, 20_000);
  });

  it('still serves after the bad bodies', async () => {
    await expectServing(besh);
  });
});

describe('list parameters on GET /v1/batches', () => {
  const bad: Array<[query: string, param: string, message: RegExp]> = [
    ['limit=-1', 'limit', /between 1 and 100/],
    ['limit=0', 'limit', /between 1 and 100/],
    ['limit=101', 'limit', /between 1 and 100/],
    ['limit=99999999999999999999', 'limit', /between 1 and 100/],
    ['limit=abc', 'limit', /integer/],
    ['limit=0x10', 'limit', /integer/],
    ['limit=%20', 'limit', /integer/],
    ['after=garbage', 'after', /batch_/],
    ['after=file-abc', 'after', /batch_/],
    [`after=batch_${'x'.repeat(5000)}`, 'after', /batch_/],
    ['after=batch_%00', 'after', /batch_/],
  ];
  it.each(bad)('%s → 400 naming the param', async (query, param, message) => {
    const r = await call(besh, `/v1/batches?${query}`);
    expectEnvelope(r, 400, 'invalid_value', message, param, query);
  });

  it('still serves after the bad list parameters', async () => {
    await expectServing(besh);
  });
});

describe('racing a running batch', () => {
  /** A 16-line batch that is in progress (about a second at 2 workers × 100 ms). */
  async function running(prefix: string): Promise<{ batchId: string; inputId: string; text: string }> {
    const text = chatLines(16, { prefix });
    const inputId = await upload(client, text, `${prefix}.jsonl`);
    const b = await create(inputId);
    await waitFor(client, b.id, (x) => x.status === 'in_progress', 10_000);
    return { batchId: b.id, inputId, text };
  }

  it('deleting the input file of a running batch → 409 file_in_use, and the batch still completes correctly', async () => {
    const { batchId, inputId, text } = await running('inuse');
    const r = await call(besh, `/v1/files/${inputId}`, { method: 'DELETE' });
    expectEnvelope(r, 409, 'file_in_use', new RegExp(`${inputId} is the input of a batch`), 'file_id');
    expect(r.headers.get('x-should-retry')).toBe('false');
    const sdk = await rejects(client.files.delete(inputId), OpenAI.ConflictError, 409);
    expect(sdk.code).toBe('file_in_use');

    const done = await waitDone(client, batchId, 20_000);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 16, completed: 16, failed: 0 });
    const out = await readJsonl(client, done.output_file_id);
    expect(out.map((l) => l.custom_id).sort()).toEqual(Array.from({ length: 16 }, (_, i) => `inuse-${i}`).sort());
    for (const l of out) expect(l.response.status_code).toBe(200);
    // The input is intact, and may go now.
    expect(await (await client.files.content(inputId)).text()).toBe(text);
    expect(await client.files.delete(inputId)).toEqual({ id: inputId, object: 'file', deleted: true });
  });

  it('cancelling twice: both answer 200, the batch ends cancelled once, a third cancel still answers cancelled', async () => {
    const { batchId } = await running('twice');
    const [first, second] = await Promise.all([call(besh, `/v1/batches/${batchId}/cancel`, { method: 'POST' }), call(besh, `/v1/batches/${batchId}/cancel`, { method: 'POST' })]);
    for (const r of [first, second]) {
      expect(r.status, r.text).toBe(200);
      expect(['cancelling', 'cancelled']).toContain(r.body.status);
      expect(r.body.id).toBe(batchId);
    }
    expect(first.body.cancelling_at).toBe(second.body.cancelling_at);
    const done = await waitDone(client, batchId, 20_000);
    expect(done.status).toBe('cancelled');
    expect(done.request_counts!.completed).toBeLessThan(16);
    const third = await client.batches.cancel(batchId);
    expect(third.status).toBe('cancelled');
    expect(third.cancelled_at).toBe(done.cancelled_at);
    // Every line is accounted for exactly once: done, or cancelled in the error file.
    const out = await readJsonl(client, done.output_file_id);
    const errs = await readJsonl(client, done.error_file_id);
    const ids = [...out, ...errs].map((l) => l.custom_id);
    expect(new Set(ids).size).toBe(16);
    expect(ids).toHaveLength(16);
    for (const e of errs) expect(e.error.code).toBe('batch_cancelled');
  });

  it('cancelling a completed batch → 409 envelope with x-should-retry: false', async () => {
    const done = await waitDone(client, (await create(input)).id, 20_000);
    expect(done.status).toBe('completed');
    const r = await call(besh, `/v1/batches/${done.id}/cancel`, { method: 'POST' });
    expectEnvelope(r, 409, null, /Cannot cancel a batch with status 'completed'/);
    expect(r.headers.get('x-should-retry')).toBe('false');
  });

  it('deleting a batch while it runs: its id is then 404 everywhere, its files are gone, and the server keeps working', async () => {
    const { batchId, inputId } = await running('gone');
    const other = await running('other');
    const before = await client.batches.retrieve(batchId);
    expect(before.status).toBe('in_progress');
    expect(before.request_counts!.completed).toBeLessThan(16);
    const del = await call(besh, `/v1/batches/${batchId}`, { method: 'DELETE' });
    expect(del.status, del.text).toBe(200);
    expect(del.body).toEqual({ id: batchId, object: 'batch', deleted: true });
    for (const [method, suffix] of [
      ['GET', ''],
      ['POST', '/cancel'],
      ['DELETE', ''],
    ] as const) {
      const r = await call(besh, `/v1/batches/${batchId}${suffix}`, { method });
      expectEnvelope(r, 404, 'batch_not_found', new RegExp(batchId), 'batch_id', `${method} ${suffix}`);
    }
    expect(await batchIds()).not.toContain(batchId);
    expect(existsSync(join(besh.dataDir, 'batches', batchId))).toBe(false);
    // The runner is gone for good: nothing is written for it later.
    await new Promise((r) => setTimeout(r, 400));
    expect(existsSync(join(besh.dataDir, 'batches', batchId))).toBe(false);
    // The input file is the user's: it stays, and is no longer in use.
    expect(await client.files.delete(inputId)).toMatchObject({ deleted: true });
    // The other batch is unaffected.
    const done = await waitDone(client, other.batchId, 20_000);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 16, completed: 16, failed: 0 });
    await expectServing(besh);
  });
});

describe('lines that are JSON objects but not valid requests → the batch fails naming each line', () => {
  it('errors.data names every bad line with its code and 1-based number', async () => {
    const good = (id: string): Record<string, unknown> => ({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'mock-model', messages: [] } });
    const lines = [
      good('ok-1'),
      { method: 'POST', url: '/v1/chat/completions', body: { model: 'mock-model' } }, // 2: no custom_id
      good('ok-1'), // 3: duplicate
      { ...good('ok-4'), url: '/v1/../../etc/passwd' }, // 4: wrong url
      { ...good('ok-5'), method: 'DELETE' }, // 5: wrong method
      { ...good('ok-6'), body: { model: 'mock-model', stream: true } }, // 6: streaming
      { ...good('ok-7'), body: 'not an object' }, // 7: body not an object
      { ...good('ok-8'), custom_id: 8 }, // 8: custom_id not a string
    ];
    const id = await upload(client, `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`, 'bad-requests.jsonl');
    const calls = mock.stats().total_requests;
    const b = await waitDone(client, (await create(id)).id, 20_000);
    expect(b.status).toBe('failed');
    const errors = b.errors!.data!;
    const byLine = new Map(errors.map((e) => [e.line, e]));
    expect([...byLine.keys()].sort((x, y) => x! - y!)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    expect(byLine.get(2)).toMatchObject({ code: 'missing_required_parameter', param: 'custom_id' });
    expect(byLine.get(3)).toMatchObject({ code: 'duplicate_custom_id' });
    expect(byLine.get(4)).toMatchObject({ code: 'invalid_url', param: 'url' });
    expect(byLine.get(5)).toMatchObject({ code: 'invalid_request', param: 'method' });
    expect(byLine.get(6)).toMatchObject({ code: 'streaming_unsupported', param: 'body.stream' });
    expect(byLine.get(7)).toMatchObject({ param: 'body' });
    expect(byLine.get(8)).toMatchObject({ param: 'custom_id' });
    for (const e of errors) {
      expect(typeof e.message).toBe('string');
      expect(e.message!.length).toBeGreaterThan(5);
    }
    // Nothing of a failed batch reaches the upstream.
    expect(mock.stats().total_requests).toBe(calls);
    await expectServing(besh);
  });
});
