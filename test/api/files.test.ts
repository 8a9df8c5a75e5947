import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import type { BadRequestError } from 'openai';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { rejects } from '../helpers/sdk-errors.js';

const LIMIT = 64 * 1024;

let mock: MockServer;
let besh: BeshProcess;
let small: BeshProcess;
let client: OpenAI;
const dirs: Array<{ path: string; remove(): void }> = [];

beforeAll(async () => {
  mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 300 });
  const d1 = tempDir();
  const d2 = tempDir();
  dirs.push(d1, d2);
  // Few workers, so a 50-line batch against a 300 ms upstream stays in progress for seconds.
  [besh, small] = await Promise.all([
    startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, MAX_WORKERS: '5', LOG_LEVEL: 'warn' }, { dataDir: d1.path }),
    startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, BESH_MAX_FILE_BYTES: String(LIMIT), BESH_MAX_LINE_BYTES: '8192', LOG_LEVEL: 'warn' }, { dataDir: d2.path }),
  ]);
  client = besh.client;
});

afterAll(async () => {
  await Promise.all([besh?.stop(), small?.stop()]);
  await mock?.close();
  for (const d of dirs) d.remove();
});

/** Names of the stored input blobs (`files/…`: local files, or a cluster's S3 objects). */
const storedBlobs = async (p: BeshProcess): Promise<string[]> => (await p.listBlobs('files/')).map((k) => k.slice('files/'.length));
/** Leftover partial uploads under `<dataDir>/tmp/`. */
const tmpParts = (p: BeshProcess): string[] => {
  const dir = join(p.dataDir, 'tmp');
  return existsSync(dir) ? readdirSync(dir) : [];
};

const rawJson = async (p: BeshProcess, path: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: any }> => {
  const r = await fetch(`${p.baseURL}${path}`, init);
  const text = await r.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON: keep the text so the assertion shows it */
  }
  return { status: r.status, headers: r.headers, body };
};

async function allFileIds(order: 'asc' | 'desc', purpose?: string): Promise<string[]> {
  const r = await rawJson(besh, `/files?limit=10000&order=${order}${purpose ? `&purpose=${purpose}` : ''}`);
  expect(r.status).toBe(200);
  expect(r.body.has_more).toBe(false);
  return r.body.data.map((f: any) => f.id);
}


/** Uploads that must be refused with 400 and leave nothing behind. */
async function expectRefused(data: Buffer | string, name: string, messageIncludes: string | RegExp, param: string | null = 'file'): Promise<BadRequestError> {
  const before = await allFileIds('desc');
  const blobsBefore = (await storedBlobs(besh));
  const err = await rejects(client.files.create({ file: await toFile(Buffer.from(data), name), purpose: 'batch' }), OpenAI.BadRequestError, 400);
  expect(err.message).toMatch(messageIncludes);
  expect(err.param).toBe(param);
  expect(err.type).toBe('invalid_request_error');
  expect(await allFileIds('desc')).toEqual(before);
  expect((await storedBlobs(besh))).toEqual(blobsBefore);
  expect(tmpParts(besh)).toEqual([]);
  return err;
}

describe('POST /v1/files', () => {
  it('returns an OpenAI File object', async () => {
    const text = chatLines(3);
    const t0 = Math.floor(Date.now() / 1000);
    const f = await client.files.create({ file: await toFile(Buffer.from(text), 'my-input.jsonl'), purpose: 'batch' });
    expect(f.id).toMatch(/^file-[0-9A-Za-z]+$/);
    expect(f.object).toBe('file');
    expect(f.bytes).toBe(Buffer.byteLength(text));
    expect(Number.isInteger(f.created_at)).toBe(true);
    expect(f.created_at).toBeGreaterThanOrEqual(t0 - 1);
    expect(f.created_at).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 1);
    expect(f.filename).toBe('my-input.jsonl');
    expect(f.purpose).toBe('batch');
    expect(f.status).toBe('processed');
    expect((await storedBlobs(besh))).toContain(`${f.id}.jsonl`);
    // retrieve answers the same object
    expect(await client.files.retrieve(f.id)).toEqual(f);
  });

  it('stores a .jsonl.gz upload decompressed', async () => {
    const text = chatLines(40);
    const gz = gzipSync(text);
    expect(gz.length).toBeLessThan(Buffer.byteLength(text));
    const f = await client.files.create({ file: await toFile(gz, 'zipped.jsonl.gz'), purpose: 'batch' });
    expect(f.bytes).toBe(Buffer.byteLength(text));
    expect(f.filename).toBe('zipped.jsonl');
    expect(await (await client.files.content(f.id)).text()).toBe(text);
  });

  it('accepts CRLF line ends and a UTF-8 BOM and returns the bytes unchanged', async () => {
    const text = chatLines(3).trimEnd().split('\n').join('\r\n') + '\r\n';
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text.replace('question 1', 'question 1 — ünïcødé ✓'))]);
    const f = await client.files.create({ file: await toFile(bytes, 'crlf.jsonl'), purpose: 'batch' });
    expect(f.bytes).toBe(bytes.length);
    const got = Buffer.from(await (await client.files.content(f.id)).arrayBuffer());
    expect(got.equals(bytes)).toBe(true);
  });

  it('refuses a bad JSON line with its line number and stores nothing', async () => {
    const lines = chatLines(4).split('\n');
    lines[2] = '{"custom_id": "x", "method": "POST",';
    const err = await expectRefused(lines.join('\n'), 'bad.jsonl', /\bline 3\b/i);
    expect(err.code).toBe('invalid_json_line');
  });

  it('refuses a line that is JSON but not an object', async () => {
    await expectRefused(`${chatLines(1)}[1,2,3]\n`, 'arr.jsonl', /\bline 2\b/i);
  });

  it('refuses a line that is not valid UTF-8', async () => {
    const bytes = Buffer.concat([Buffer.from(chatLines(2)), Buffer.from('{"custom_id":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]);
    const err = await expectRefused(bytes, 'latin.jsonl', /\bline 3\b/i);
    expect(err.code).toBe('invalid_utf8');
  });

  it('refuses a blank line in the middle', async () => {
    const lines = chatLines(3).split('\n');
    lines.splice(1, 0, '');
    await expectRefused(lines.join('\n'), 'blank.jsonl', /\bline 2\b/i);
  });

  it('accepts trailing blank lines', async () => {
    const text = `${chatLines(2)}\n\n`;
    const f = await client.files.create({ file: await toFile(Buffer.from(text), 'trailing.jsonl'), purpose: 'batch' });
    expect(f.bytes).toBe(Buffer.byteLength(text));
  });

  it('refuses an empty file', async () => {
    await expectRefused('', 'empty.jsonl', /empty/i);
    await expectRefused('\n\n', 'blanks.jsonl', /empty/i);
  });

  it('refuses a file name other than .jsonl', async () => {
    const err = await expectRefused(chatLines(1), 'input.json', /Invalid file format for Batch API\. Must be \.jsonl/);
    expect(err.error).toMatchObject({ message: 'Invalid file format for Batch API. Must be .jsonl', type: 'invalid_request_error' });
    await expectRefused(chatLines(1), 'input.txt', 'Invalid file format for Batch API. Must be .jsonl');
  });

  it('refuses a missing purpose, an unknown purpose and a missing file with the param', async () => {
    const before = await allFileIds('desc');
    const noPurpose = await rejects(client.files.create({ file: await toFile(Buffer.from(chatLines(1)), 'a.jsonl') } as any), OpenAI.BadRequestError, 400);
    expect(noPurpose.param).toBe('purpose');
    const unknown = await rejects(
      client.files.create({ file: await toFile(Buffer.from(chatLines(1)), 'a.jsonl'), purpose: 'nonsense' as any }),
      OpenAI.BadRequestError,
      400,
    );
    expect(unknown.param).toBe('purpose');
    expect(unknown.message).toContain('nonsense');

    const form = new FormData();
    form.append('purpose', 'batch');
    const r = await rawJson(besh, '/files', { method: 'POST', body: form });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ type: 'invalid_request_error', param: 'file' });
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);

    const notMultipart = await rawJson(besh, '/files', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"purpose":"batch"}' });
    expect(notMultipart.status).toBe(400);
    expect(notMultipart.body.error.type).toBe('invalid_request_error');

    expect(await allFileIds('desc')).toEqual(before);
    expect(tmpParts(besh)).toEqual([]);
  });
});

describe('malformed multipart bodies', () => {
  const part = (name: string, value: string, filename?: string): string =>
    `--XX\r\nContent-Disposition: form-data; name="${name}"${filename ? `; filename="${filename}"` : ''}\r\n\r\n${value}\r\n`;
  const post = (body: string, contentType = 'multipart/form-data; boundary=XX') =>
    rawJson(besh, '/files', { method: 'POST', headers: { 'content-type': contentType }, body });

  it.each([
    ['a body cut off inside the file', () => post(`${part('purpose', 'batch')}--XX\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n{"a":1}\n{"b":`)],
    ['no boundary', () => post(`${part('purpose', 'batch')}--XX--\r\n`, 'multipart/form-data')],
    ['a boundary of 300 characters', () => post('x', `multipart/form-data; boundary=${'b'.repeat(300)}`)],
    ['two files', () => post(`${part('purpose', 'batch')}${part('file', '{"a":1}', 'a.jsonl')}${part('file', '{"a":1}', 'b.jsonl')}--XX--\r\n`)],
    ['a file under another field name', () => post(`${part('purpose', 'batch')}${part('data', '{"a":1}', 'a.jsonl')}--XX--\r\n`)],
    ['30 extra fields', () => post(`${Array.from({ length: 30 }, (_, i) => part(`f${i}`, 'x')).join('')}${part('purpose', 'batch')}${part('file', '{"a":1}', 'a.jsonl')}--XX--\r\n`)],
    ['a __proto__ field', () => post(`${part('__proto__', 'batch')}${part('file', '{"a":1}', 'a.jsonl')}--XX--\r\n`)],
  ])('%s → 400 envelope, nothing stored', async (_label, send) => {
    const before = await allFileIds('desc');
    const blobsBefore = (await storedBlobs(besh));
    const r = await send();
    expect(r.status).toBe(400);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.headers.get('x-request-id')).toMatch(/^req_/);
    expect(r.body.error).toMatchObject({ type: 'invalid_request_error', message: expect.any(String) });
    expect(await allFileIds('desc')).toEqual(before);
    expect((await storedBlobs(besh))).toEqual(blobsBefore);
    expect(tmpParts(besh)).toEqual([]);
  });

  it('strips directories from the file name', async () => {
    const r = await post(`${part('purpose', 'batch')}${part('file', '{"a":1}', '../../evil.jsonl')}--XX--\r\n`);
    expect(r.status).toBe(200);
    expect(r.body.filename).toBe('evil.jsonl');
    expect((await storedBlobs(besh))).toContain(`${r.body.id}.jsonl`);
    await client.files.delete(r.body.id);
  });
});

describe('BESH_MAX_FILE_BYTES', () => {
  /** JSONL of exactly `size` bytes (one padded request line per ~1 KB). */
  const jsonlOfSize = (size: number): string => {
    const lines: string[] = [];
    let total = 0;
    for (let i = 0; total < size; i++) {
      const base = JSON.stringify({ custom_id: `r-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'mock-model', messages: [{ role: 'user', content: '' }] } });
      const room = size - total - base.length - 1; // minus the '\n'
      const pad = Math.max(0, Math.min(1000, room));
      const line = base.replace('"content":""', `"content":"${'x'.repeat(pad)}"`);
      lines.push(line);
      total += line.length + 1;
      if (room < 1000 && total !== size) throw new Error(`cannot build exactly ${size} bytes`);
    }
    return lines.join('\n') + '\n';
  };

  it('accepts a file of exactly the limit', async () => {
    const text = jsonlOfSize(LIMIT);
    expect(Buffer.byteLength(text)).toBe(LIMIT);
    const f = await small.client.files.create({ file: await toFile(Buffer.from(text), 'exact.jsonl'), purpose: 'batch' });
    expect(f.bytes).toBe(LIMIT);
    await small.client.files.delete(f.id);
  });

  it('refuses a line longer than BESH_MAX_LINE_BYTES with its line number', async () => {
    const long = JSON.stringify({ custom_id: 'long', method: 'POST', url: '/v1/chat/completions', body: { model: 'm', messages: [{ role: 'user', content: 'y'.repeat(9000) }] } });
    const err = await rejects(small.client.files.create({ file: await toFile(Buffer.from(`${chatLines(1)}${long}\n`), 'long.jsonl'), purpose: 'batch' }), OpenAI.BadRequestError, 400);
    expect(err.message).toMatch(/\bline 2\b/i);
    expect(err.message).toContain('8192');
    expect(err.param).toBe('file');
    expect((await storedBlobs(small))).toEqual([]);
    expect(tmpParts(small)).toEqual([]);
  });

  it('answers 413 for a larger file and leaves nothing on disk', async () => {
    const before = (await small.client.files.list()).data.length;
    const text = jsonlOfSize(LIMIT + 1024 * 40);
    const err = await rejects(small.client.files.create({ file: await toFile(Buffer.from(text), 'big.jsonl'), purpose: 'batch' }), OpenAI.APIError, 413);
    expect(err.message).toMatch(/BESH_MAX_FILE_BYTES|limit/);
    expect(err.param).toBe('file');
    expect((await small.client.files.list()).data.length).toBe(before);
    expect((await storedBlobs(small))).toEqual([]);
    expect(tmpParts(small)).toEqual([]);
  });

  it('answers 413 for gzip content whose decompressed size passes the limit', async () => {
    const text = jsonlOfSize(LIMIT * 3);
    const gz = gzipSync(text);
    expect(gz.length).toBeLessThan(LIMIT);
    const err = await rejects(small.client.files.create({ file: await toFile(gz, 'big.jsonl.gz'), purpose: 'batch' }), OpenAI.APIError, 413);
    expect(err.param).toBe('file');
    expect((await small.client.files.list()).data).toEqual([]);
    expect((await storedBlobs(small))).toEqual([]);
    expect(tmpParts(small)).toEqual([]);
    // The server is still healthy and accepts a small file afterwards.
    const f = await small.client.files.create({ file: await toFile(Buffer.from(chatLines(2)), 'ok.jsonl'), purpose: 'batch' });
    expect((await storedBlobs(small))).toEqual([`${f.id}.jsonl`]);
  });
});

describe('GET /v1/files', () => {
  let ids: string[] = []; // every file, oldest first

  beforeAll(async () => {
    for (let i = 0; i < 5; i++) await upload(client, chatLines(1, { prefix: `list-${i}` }), `list-${i}.jsonl`);
    ids = await allFileIds('asc');
  });

  it('is a list envelope, newest first by default', async () => {
    expect(ids.length).toBeGreaterThanOrEqual(5);
    const r = await rawJson(besh, '/files');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.body.object).toBe('list');
    expect(r.body.data.map((f: any) => f.id)).toEqual([...ids].reverse());
    expect(r.body.first_id).toBe(ids[ids.length - 1]);
    expect(r.body.last_id).toBe(ids[0]);
    expect(r.body.has_more).toBe(false);
    for (const f of r.body.data) expect(f).toMatchObject({ object: 'file', purpose: 'batch' });
  });

  it('honours limit, order and after exactly', async () => {
    const n = ids.length;
    const asc1 = await rawJson(besh, '/files?limit=2&order=asc');
    expect(asc1.body.data.map((f: any) => f.id)).toEqual(ids.slice(0, 2));
    expect(asc1.body).toMatchObject({ first_id: ids[0], last_id: ids[1], has_more: true });

    const asc2 = await rawJson(besh, `/files?limit=2&order=asc&after=${ids[1]}`);
    expect(asc2.body.data.map((f: any) => f.id)).toEqual(ids.slice(2, 4));
    expect(asc2.body).toMatchObject({ first_id: ids[2], last_id: ids[3], has_more: n > 4 });

    const ascLast = await rawJson(besh, `/files?limit=1&order=asc&after=${ids[n - 2]}`);
    expect(ascLast.body).toMatchObject({ data: [expect.objectContaining({ id: ids[n - 1] })], first_id: ids[n - 1], last_id: ids[n - 1], has_more: false });

    const ascEnd = await rawJson(besh, `/files?order=asc&after=${ids[n - 1]}`);
    expect(ascEnd.body).toEqual({ object: 'list', data: [], first_id: null, last_id: null, has_more: false });

    const desc = await rawJson(besh, `/files?limit=2&order=desc&after=${ids[n - 1]}`);
    expect(desc.body.data.map((f: any) => f.id)).toEqual([ids[n - 2], ids[n - 3]]);
    expect(desc.body).toMatchObject({ first_id: ids[n - 2], last_id: ids[n - 3], has_more: true });

    const descEnd = await rawJson(besh, `/files?limit=1&order=desc&after=${ids[1]}`);
    expect(descEnd.body).toMatchObject({ first_id: ids[0], last_id: ids[0], has_more: false });

    const exact = await rawJson(besh, `/files?limit=${n}`);
    expect(exact.body.data).toHaveLength(n);
    expect(exact.body.has_more).toBe(false);
    const oneLess = await rawJson(besh, `/files?limit=${n - 1}`);
    expect(oneLess.body.data).toHaveLength(n - 1);
    expect(oneLess.body.has_more).toBe(true);
  });

  it('filters by purpose and refuses bad parameters with the param', async () => {
    const batch = await rawJson(besh, '/files?purpose=batch');
    expect(batch.body.data.length).toBe(ids.length);
    const output = await rawJson(besh, '/files?purpose=batch_output');
    expect(output.status).toBe(200);
    expect(output.body).toEqual({ object: 'list', data: [], first_id: null, last_id: null, has_more: false });

    for (const [q, param] of [
      ['purpose=bogus', 'purpose'],
      ['order=up', 'order'],
      ['limit=0', 'limit'],
      ['limit=-1', 'limit'],
      ['limit=10001', 'limit'],
      ['limit=abc', 'limit'],
      ['after=garbage', 'after'],
    ] as const) {
      const r = await rawJson(besh, `/files?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.body.error, q).toMatchObject({ type: 'invalid_request_error', param });
    }
  });

  it('SDK auto-pagination visits every file once', async () => {
    const seen: string[] = [];
    for await (const f of client.files.list({ limit: 2 })) seen.push(f.id);
    expect(seen).toEqual([...ids].reverse());
    const seenAsc: string[] = [];
    for await (const f of client.files.list({ limit: 3, order: 'asc' })) seenAsc.push(f.id);
    expect(seenAsc).toEqual(ids);
  });
});

describe('retrieve, content, delete', () => {
  it('streams exact bytes and deletes', async () => {
    const text = chatLines(25, { prefix: 'content' });
    const id = await upload(client, text, 'content.jsonl');
    const r = await fetch(`${besh.baseURL}/files/${id}/content`, { headers: { accept: 'application/binary' } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-length')).toBe(String(Buffer.byteLength(text)));
    expect(r.headers.get('x-request-id')).toMatch(/^req_/);
    expect(await r.text()).toBe(text);
    expect(await (await client.files.content(id)).text()).toBe(text);

    const del = await client.files.delete(id);
    expect(del).toEqual({ id, object: 'file', deleted: true });
    expect((await storedBlobs(besh))).not.toContain(`${id}.jsonl`);
    // One call at a time: a promise rejecting before it is awaited would be an unhandled rejection.
    for (const call of [() => client.files.retrieve(id), () => client.files.content(id), () => client.files.delete(id)]) {
      const err = await rejects(call(), OpenAI.NotFoundError, 404);
      expect(err.message).toContain(id);
      expect(err.type).toBe('invalid_request_error');
    }
    expect(await allFileIds('desc')).not.toContain(id);
  });

  it('answers a 404 envelope, never a 500, for weird ids', async () => {
    const weird = ['..%2Fetc', '%2e%2e', '%2e%2e%2f%2e%2e%2fbesh.sqlite', 'a'.repeat(10_240), 'file-%00', '%00', 'file-abc%2F..%2F..', 'file-' + 'A'.repeat(70), 'batch_abc', 'file-abc.jsonl', '%E0%A4%A', 'file-%zz'];
    for (const id of weird) {
      for (const [method, suffix] of [
        ['GET', ''],
        ['GET', '/content'],
        ['DELETE', ''],
      ] as const) {
        const r = await rawJson(besh, `/files/${id}${suffix}`, { method });
        const label = `${method} /files/${id.slice(0, 40)}${suffix}`;
        expect(r.status, label).toBe(404);
        expect(r.headers.get('content-type'), label).toMatch(/^application\/json/);
        expect(r.headers.get('x-request-id'), label).toMatch(/^req_/);
        expect(r.body.error, label).toMatchObject({ type: 'invalid_request_error' });
        expect(typeof r.body.error.message, label).toBe('string');
      }
    }
    // A literal ../ is resolved by the URL parser; it still must not escape /v1/files.
    const dots = await rawJson(besh, '/files/../etc');
    expect(dots.status).toBe(404);
    expect(dots.body.error.type).toBe('invalid_request_error');
    // The server is still fine.
    expect((await fetch(`${besh.url}/health`)).status).toBe(200);
  });

  it('refuses with 409 to delete the input file of a running batch', async () => {
    const input = await upload(client, chatLines(50, { prefix: 'busy' }), 'busy.jsonl');
    const batch = await client.batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(client, batch.id, (b) => b.status === 'in_progress' && b.request_counts!.completed > 0, 20_000);
    const err = await rejects(client.files.delete(input), OpenAI.ConflictError, 409);
    expect(err.headers?.get('x-should-retry')).toBe('false');
    expect(err.message).toContain(input);
    expect(await client.files.retrieve(input)).toMatchObject({ id: input, purpose: 'batch' });
    expect((await storedBlobs(besh))).toContain(`${input}.jsonl`);
    const running = await client.batches.retrieve(batch.id);
    expect(running.status).toBe('in_progress');

    await client.batches.cancel(batch.id);
    const done = await waitDone(client, batch.id, 20_000);
    expect(done.status).toBe('cancelled');
    expect(done.request_counts!.completed).toBeLessThan(50);
    // Once the batch has finished, the input may go.
    expect(await client.files.delete(input)).toEqual({ id: input, object: 'file', deleted: true });
    const outputs = await allFileIds('desc', 'batch_output');
    expect(outputs).toEqual(expect.arrayContaining([done.output_file_id, done.error_file_id].filter(Boolean)));
  });
});
