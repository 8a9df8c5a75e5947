/**
 * Hostile input corpus, part 1: uploads and the file routes. Every case ends in a clear 4xx with
 * OpenAI's error envelope (or is accepted when the issue says so), leaves no bytes on disk and
 * leaves the server serving.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

import OpenAI, { toFile } from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';

import { readJsonl, waitDone } from '../helpers/batches.js';
import type { BeshProcess } from '../helpers/besh-process.js';
import {
  blobFiles,
  BOUNDARY,
  call,
  cutOffUpload,
  eventually,
  expectEnvelope,
  expectServing,
  multipart,
  type Part,
  postMultipart,
  type RawAnswer,
  slowPost,
  tmpFiles,
  twoRequestsOneConnection,
  uploadParts,
  walk,
} from '../helpers/raw-http.js';
import { rejects } from '../helpers/sdk-errors.js';
import { stackFactory } from '../helpers/stack.js';

const MAX_FILE = 64 * 1024;
const MAX_LINE = 4096;

const setup = stackFactory('besh-hostile-files-');
let besh: BeshProcess;
let client: OpenAI;

beforeAll(async () => {
  ({ besh, client } = await setup({}, { BESH_MAX_FILE_BYTES: String(MAX_FILE), BESH_MAX_LINE_BYTES: String(MAX_LINE) }));
});

const line = (i: number, extra = ''): string =>
  JSON.stringify({ custom_id: `h-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'mock-model', messages: [{ role: 'user', content: `q${i}${extra}` }] } });
const lines = (n: number): string => `${Array.from({ length: n }, (_, i) => line(i)).join('\n')}\n`;

const fileIds = async (): Promise<string[]> => {
  const r = await call(besh, '/v1/files?limit=10000');
  expect(r.status, r.text).toBe(200);
  return r.body.data.map((f: { id: string }) => f.id).sort();
};

/** Runs `send`, expects the envelope, and that no file row, blob or temp file was added. */
async function expectRefusedUpload(send: () => Promise<RawAnswer>, status: number, code: string | null, message: RegExp, param?: string | null): Promise<RawAnswer> {
  const rowsBefore = await fileIds();
  const blobsBefore = blobFiles(besh);
  const r = await send();
  expectEnvelope(r, status, code, message, param);
  expect(await fileIds()).toEqual(rowsBefore);
  expect(blobFiles(besh)).toEqual(blobsBefore);
  expect(tmpFiles(besh)).toEqual([]);
  return r;
}

const mp = (parts: Part[], opts?: { boundary?: string; close?: boolean }) => (): Promise<RawAnswer> => postMultipart(besh, multipart(parts, opts));
const up = (content: string | Buffer, filename = 'input.jsonl') => mp(uploadParts(content, filename));

/** A gzip member with a valid header whose deflate data is garbage. */
const corruptGzip = (): Buffer => {
  const gz = gzipSync(lines(20));
  const bad = Buffer.from(gz);
  for (let i = 12; i < bad.length - 8; i++) bad[i] = 0xff;
  return bad;
};

/** Short JSON lines, about `bytes` of them once decompressed, gzipped to a small fraction. */
const gzipBomb = (bytes: number): Buffer => gzipSync(Buffer.from('{"a":1}\n'.repeat(Math.ceil(bytes / 8))), { level: 9 });

type RefusedCase = [label: string, send: () => Promise<RawAnswer>, status: number, code: string | null, message: RegExp, param: string | null];

const refused: RefusedCase[] = [
  // malformed multipart
  // Busboy reads text without a boundary line as a preamble: a body with no parts, so no file.
  ['a multipart body that is plain text', () => postMultipart(besh, 'this is not multipart at all'), 400, 'missing_required_parameter', /'file'/, 'file'],
  ['multipart without a boundary', () => postMultipart(besh, multipart(uploadParts(lines(1))), 'multipart/form-data'), 400, 'invalid_multipart', /malformed|ended early/, 'file'],
  ['a body cut off inside the file part', mp(uploadParts(lines(3)), { close: false }), 400, 'invalid_multipart', /malformed|ended early/, 'file'],
  ['an empty multipart body', () => postMultipart(besh, ''), 400, 'missing_required_parameter', /'file'/, 'file'],
  ['two files', mp([...uploadParts(lines(1)), { name: 'file', value: lines(1), filename: 'b.jsonl' }]), 400, null, /exactly one file/, 'file'],
  ['the file under another field name', mp([{ name: 'purpose', value: 'batch' }, { name: 'data', value: lines(1), filename: 'a.jsonl' }]), 400, null, /'data'.*'file'/, 'file'],
  ['30 extra fields', mp([...Array.from({ length: 30 }, (_, i) => ({ name: `f${i}`, value: 'x' })), ...uploadParts(lines(1))]), 400, 'too_many_fields', /Too many form fields/, null],
  // missing or wrong fields
  ['no file part', mp([{ name: 'purpose', value: 'batch' }]), 400, 'missing_required_parameter', /'file'/, 'file'],
  ['no purpose part', mp(uploadParts(lines(1), 'a.jsonl', null)), 400, 'missing_required_parameter', /'purpose'/, 'purpose'],
  ['an unknown purpose', mp(uploadParts(lines(1), 'a.jsonl', 'nonsense')), 400, 'invalid_value', /'nonsense'.*'batch'/, 'purpose'],
  ['a purpose full of control characters', mp(uploadParts(lines(1), 'a.jsonl', 'ba\u0000tch\u001b[2J')), 400, 'invalid_value', /purpose/, 'purpose'],
  ['a file name other than .jsonl', up(lines(1), 'input.csv'), 400, 'invalid_file_format', /Must be \.jsonl/, 'file'],
  // contents
  ['an empty file', up(''), 400, 'empty_file', /empty/, 'file'],
  ['a file of whitespace-only lines', up(' \n\t\n   \r\n\n'), 400, 'empty_file', /empty/, 'file'],
  ['a whitespace-only line between requests', up(`${line(0)}\n   \t\n${line(1)}\n`), 400, 'blank_line', /Line 2\b/, 'file'],
  ['invalid UTF-8 on line 3', up(Buffer.concat([Buffer.from(lines(2)), Buffer.from('{"custom_id":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}\n')])), 400, 'invalid_utf8', /Line 3\b.*UTF-8/, 'file'],
  ['an encoded surrogate (CESU-8) on line 1', up(Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}\n')])), 400, 'invalid_utf8', /Line 1\b/, 'file'],
  ['a raw NUL byte inside a JSON string', up(`${line(0)}\n{"custom_id":"a\u0000b"}\n`), 400, 'invalid_json_line', /Line 2\b.*not valid JSON/, 'file'],
  ['a line that is JSON but not an object', up(`${line(0)}\n["custom_id"]\n`), 400, 'invalid_json_line', /Line 2\b.*not a JSON object/, 'file'],
  ['a line longer than BESH_MAX_LINE_BYTES', up(`${line(0)}\n${line(1, 'y'.repeat(MAX_LINE))}\n`), 400, 'line_too_long', new RegExp(`Line 2\\b.*${MAX_LINE}`), 'file'],
  // gzip
  ['a gzip bomb (tiny upload, decompressed past the limit)', up(gzipBomb(50 * MAX_FILE), 'bomb.jsonl.gz'), 413, 'file_too_large', new RegExp(`${MAX_FILE}-byte limit`), 'file'],
  ['a truncated gzip upload', up(gzipSync(lines(50)).subarray(0, 40), 'cut.jsonl.gz'), 400, 'invalid_gzip', /gzip/, 'file'],
  ['a gzip upload with corrupt deflate data', up(corruptGzip(), 'bad.jsonl.gz'), 400, 'invalid_gzip', /gzip/, 'file'],
  // not a multipart request at all
  ['a JSON body', () => call(besh, '/v1/files', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"purpose":"batch"}' }), 400, 'invalid_content_type', /multipart\/form-data/, null],
  ['a text/plain body', () => call(besh, '/v1/files', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: lines(1) }), 400, 'invalid_content_type', /multipart\/form-data/, null],
  ['an urlencoded body', () => call(besh, '/v1/files', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'purpose=batch&file=x' }), 415, 'invalid_content_type', /Content-Type 'application\/x-www-form-urlencoded'/, null],
];

describe('uploads that must be refused, leaving nothing behind', () => {
  it.each(refused)('%s', async (_label, send, status, code, message, param) => {
    await expectRefusedUpload(send, status, code, message, param);
  });

  it('the official SDK sees the same refusals as typed errors', async () => {
    const err = await rejects(client.files.create({ file: await toFile(Buffer.from(`${line(0)}\n{oops\n`), 'sdk.jsonl'), purpose: 'batch' }), OpenAI.BadRequestError, 400);
    expect(err.code).toBe('invalid_json_line');
    expect(err.message).toMatch(/Line 2\b/);
    const big = await rejects(client.files.create({ file: await toFile(Buffer.from(lines(Math.ceil(MAX_FILE / 100))), 'big.jsonl'), purpose: 'batch' }), OpenAI.APIError, 413);
    expect(big.code).toBe('file_too_large');
    expect(tmpFiles(besh)).toEqual([]);
  });

  it('still serves after the refused uploads', async () => {
    await expectServing(besh);
    const f = await client.files.create({ file: await toFile(Buffer.from(lines(2)), 'after.jsonl'), purpose: 'batch' });
    expect(f.status).toBe('processed');
  });
});

describe('a file over BESH_MAX_FILE_BYTES', () => {
  it('is answered 413 while the client is still sending, and nothing is stored', async () => {
    const rowsBefore = await fileIds();
    const blobsBefore = blobFiles(besh);
    const padded = `${line(0, 'p'.repeat(900))}\n`;
    const chunk = Buffer.from(padded.repeat(Math.floor((32 * 1024) / padded.length)));
    const head = multipart([{ name: 'purpose', value: 'batch' }, { name: 'file', value: Buffer.alloc(0), filename: 'huge.jsonl' }], { close: false });
    // `head` ends with the part's closing CRLF; the file's bytes go before it.
    const body = { head: head.subarray(0, head.length - 2), chunk, count: 400, tail: Buffer.from(`\r\n--${BOUNDARY}--\r\n`) };
    const r = await slowPost(besh.port, '/v1/files', `multipart/form-data; boundary=${BOUNDARY}`, body, { intervalMs: 5 });
    expect(r.status, r.answer).toBe(413);
    expect(r.json?.error).toMatchObject({ code: 'file_too_large', param: 'file', type: 'invalid_request_error' });
    expect(r.json.error.message).toContain(`${MAX_FILE}-byte limit`);
    // 12.8 MB announced; the answer came after about the limit, far before the end.
    expect(r.bodyBytes).toBeGreaterThan(12 * 1024 * 1024);
    expect(r.sentBeforeAnswer).toBeLessThan(r.bodyBytes / 10);
    expect(await fileIds()).toEqual(rowsBefore);
    expect(blobFiles(besh)).toEqual(blobsBefore);
    expect(tmpFiles(besh)).toEqual([]);
    await expectServing(besh);
  });

  it('a refused upload leaves its keep-alive connection usable for the next request', async () => {
    // A bad first line, then more of the body trickling in while the server answers: the rest of
    // the body must still be read, or the next request on the same connection is never answered.
    const head = multipart([{ name: 'purpose', value: 'batch' }, { name: 'file', value: Buffer.from('not json\n'), filename: 'bad.jsonl' }], { close: false });
    const padded = `${line(1, 'p'.repeat(900))}\n`;
    const statuses = await twoRequestsOneConnection(
      besh.port,
      {
        path: '/v1/files',
        contentType: `multipart/form-data; boundary=${BOUNDARY}`,
        head: head.subarray(0, head.length - 2),
        chunk: Buffer.from(padded.repeat(8)),
        count: 20,
        tail: Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
        intervalMs: 10,
      },
      'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
    );
    expect(statuses).toEqual(['HTTP/1.1 400 Bad Request', 'HTTP/1.1 200 OK']);
    expect(tmpFiles(besh)).toEqual([]);
  });
});

describe('uploads that are accepted', () => {
  it('CRLF line endings and a UTF-8 BOM: stored byte for byte, and a batch from them completes', async () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(lines(4).replace(/\n/g, '\r\n'))]);
    const f = await client.files.create({ file: await toFile(bytes, 'crlf-bom.jsonl'), purpose: 'batch' });
    expect(f.bytes).toBe(bytes.length);
    expect(Buffer.from(await (await client.files.content(f.id)).arrayBuffer()).equals(bytes)).toBe(true);
    const b = await client.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitDone(client, b.id, 20_000);
    expect(done.status, JSON.stringify(done.errors)).toBe('completed');
    expect(done.request_counts).toMatchObject({ total: 4, completed: 4, failed: 0 });
    const out = await readJsonl(client, done.output_file_id);
    expect(out.map((l) => l.custom_id).sort()).toEqual(['h-0', 'h-1', 'h-2', 'h-3']);
    for (const l of out) expect(l.response.status_code).toBe(200);
  });

  it('a .jsonl.gz name with plain content is stored as it came, under the name without .gz', async () => {
    const text = lines(3);
    const r = await up(text, 'plain.jsonl.gz')();
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({ filename: 'plain.jsonl', bytes: Buffer.byteLength(text), purpose: 'batch' });
    expect(await (await client.files.content(r.body.id)).text()).toBe(text);
  });

  it('a plain .jsonl name with gzip content is decompressed (the bytes decide, not the name)', async () => {
    const text = lines(3);
    const r = await up(gzipSync(text), 'secretly-gzip.jsonl')();
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({ filename: 'secretly-gzip.jsonl', bytes: Buffer.byteLength(text) });
    expect(await (await client.files.content(r.body.id)).text()).toBe(text);
  });
});

describe('file names with path separators and control characters', () => {
  const token = `hostile-${randomBytes(4).toString('hex')}`;
  const cases: Array<[raw: string, expected: string | RegExp]> = [
    [`../../${token}-a.jsonl`, `${token}-a.jsonl`],
    [`..\\..\\${token}-b.jsonl`, `${token}-b.jsonl`],
    [`/etc/cron.d/${token}-c.jsonl`, `${token}-c.jsonl`],
    [`files/../../tmp/${token}-d.jsonl`, `${token}-d.jsonl`],
    [`${token}-e\u0001\u001b[31m\u007f\t.jsonl`, `${token}-e[31m.jsonl`],
    ['..', 'upload.jsonl'],
  ];

  it.each(cases)('%j is stored under a clean base name, inside the data dir', async (rawName, expected) => {
    const r = await postMultipart(besh, multipart(uploadParts(lines(1), rawName)));
    // Accepted: the directories and control characters are dropped, not refused ('..' is no name
    // at all and becomes upload.jsonl).
    expect(r.status, r.text).toBe(200);
    expect(r.body.filename).toBe(expected);
    // eslint-disable-next-line no-control-regex
    expect(r.body.filename).not.toMatch(/[/\\\u0000-\u001f\u007f]/);
    // The blob is named after the id, never after the client's name.
    expect(blobFiles(besh)).toContain(join('files', `${r.body.id}.jsonl`));
    expect(walk(besh.dataDir).filter((f) => f.includes(token))).toEqual([]);
    // Nothing was written where the raw name points, from the data dir or its folders.
    if (rawName !== '..') {
      for (const base of [besh.dataDir, join(besh.dataDir, 'files'), join(besh.dataDir, 'tmp')]) {
        expect(existsSync(resolve(base, rawName.replace(/\\/g, '/'))), `${base} + ${rawName}`).toBe(false);
      }
    }
    // The download names it safely too.
    const c = await call(besh, `/v1/files/${r.body.id}/content`);
    expect(c.status).toBe(200);
    expect(c.headers.get('content-disposition')).toMatch(/^attachment; filename="[\w.-]+"$/);
  });

  it('an RFC 5987 filename* with an encoded NUL and slashes is cleaned the same way', async () => {
    const r = await postMultipart(
      besh,
      multipart([{ name: 'purpose', value: 'batch' }, { name: 'file', value: lines(1), disposition: `form-data; name="file"; filename*=UTF-8''..%2F..%2F${token}-f%00.jsonl` }]),
    );
    expect(r.status, r.text).toBe(200);
    expect(r.body.filename).toBe(`${token}-f.jsonl`);
    expect(walk(besh.dataDir).filter((f) => f.includes(token))).toEqual([]);
  });
});

describe('an upload cut off mid-stream', () => {
  it('leaves no file row and no partial bytes, and the server still serves', async () => {
    const rowsBefore = await fileIds();
    const blobsBefore = blobFiles(besh);
    const head = multipart([{ name: 'purpose', value: 'batch' }, { name: 'file', value: Buffer.from(lines(60)), filename: 'cut.jsonl' }], { close: false });
    let sawPartial = false;
    await cutOffUpload(besh.port, `multipart/form-data; boundary=${BOUNDARY}`, head.length + 40_000, head, 300, () => {
      sawPartial = tmpFiles(besh).length === 1;
    });
    expect(sawPartial).toBe(true); // the partial upload existed while the client was sending
    expect(await eventually(() => tmpFiles(besh).length === 0)).toBe(true);
    expect(await fileIds()).toEqual(rowsBefore);
    expect(blobFiles(besh)).toEqual(blobsBefore);
    await expectServing(besh);
  });

  it('the same for a gzip upload cut off mid-stream', async () => {
    const rowsBefore = await fileIds();
    const gz = gzipSync(lines(400));
    const head = multipart([{ name: 'purpose', value: 'batch' }, { name: 'file', value: gz.subarray(0, Math.floor(gz.length / 2)), filename: 'cut.jsonl.gz' }], { close: false });
    await cutOffUpload(besh.port, `multipart/form-data; boundary=${BOUNDARY}`, head.length + gz.length, head, 200);
    expect(await eventually(() => tmpFiles(besh).length === 0)).toBe(true);
    expect(await fileIds()).toEqual(rowsBefore);
    await expectServing(besh);
  });
});

describe('hostile ids on the file routes → 404 envelope', () => {
  const ids: Array<[label: string, id: string]> = [
    ['../', '..%2F..%2Fbesh.sqlite'],
    ['%2e%2e', '%2e%2e'],
    ['%2e%2e/%2e%2e', '%2e%2e%2F%2e%2e%2Fetc%2Fpasswd'],
    ['a NUL byte', 'file-abc%00.jsonl'],
    ['a lone NUL', '%00'],
    ['10 KB of characters', 'f'.repeat(10 * 1024)],
    ['10 KB after the prefix', `file-${'A'.repeat(10 * 1024)}`],
    ['bad percent-encoding', 'file-%zz%E0%A4%A'],
    ['a batch id', 'batch_abc'],
  ];
  const routes: Array<[method: string, suffix: string]> = [
    ['GET', ''],
    ['GET', '/content'],
    ['DELETE', ''],
  ];

  it.each(ids)('%s', async (_label, id) => {
    for (const [method, suffix] of routes) {
      const r = await call(besh, `/v1/files/${id}${suffix}`, { method });
      const label = `${method} /v1/files/${id.slice(0, 30)}${suffix}`;
      expect(r.status, label).toBe(404);
      expect(['file_not_found', 'unknown_url'], label).toContain(r.body?.error?.code);
      expectEnvelope(r, 404, r.body.error.code, r.body.error.code === 'file_not_found' ? /No such File object/ : /Unknown request URL/, undefined, label);
      // The echo of the id is bounded and printable.
      expect(r.body.error.message.length, label).toBeLessThan(400);
      // eslint-disable-next-line no-control-regex
      expect(r.body.error.message, label).not.toMatch(/[\u0000-\u001f]/);
    }
  });

  it('a literal ../ in the path does not escape /v1/files', async () => {
    for (const path of ['/v1/files/../../etc/passwd', '/v1/files/..%2F..%2F..%2Fetc%2Fpasswd/content']) {
      const r = await call(besh, path);
      expect(r.status, path).toBe(404);
      expect(r.text).not.toMatch(/root:/);
    }
    await expectServing(besh);
  });
});

describe('list parameters on GET /v1/files', () => {
  const bad: Array<[query: string, param: string, message: RegExp]> = [
    ['limit=-1', 'limit', /between 1 and 10000/],
    ['limit=0', 'limit', /between 1 and 10000/],
    ['limit=99999999999999999999', 'limit', /between 1 and 10000/],
    ['limit=10001', 'limit', /between 1 and 10000/],
    ['limit=abc', 'limit', /integer/],
    ['limit=1e3', 'limit', /integer/],
    ['limit=%00', 'limit', /integer/],
    ['limit=1&limit=2', 'limit', /integer/],
    ['after=garbage', 'after', /file-/],
    [`after=file-${'x'.repeat(5000)}`, 'after', /file-/],
    ['after=file-..%2F..%2Fx', 'after', /file-/],
    ['order=sideways', 'order', /'asc' or 'desc'/],
  ];
  it.each(bad)('%s → 400 naming the param', async (query, param, message) => {
    const r = await call(besh, `/v1/files?${query}`);
    expectEnvelope(r, 400, 'invalid_value', message, param, query);
  });

  it('a well-formed but unknown after is an empty page, not an error', async () => {
    const r = await call(besh, '/v1/files?after=file-doesnotexist');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ object: 'list', has_more: false });
    await expectServing(besh);
  });
});
