import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import type OpenAI from 'openai';
import { APIError, BadRequestError, ConflictError, NotFoundError, toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, readJsonl, waitDone } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { createKey, keyClient } from '../helpers/keys.js';
import { rejects } from '../helpers/sdk-errors.js';
import { addPart, createUpload, cut, eventually, lineOfBytes, md5, postJson, postPart, raw, uploadInParts } from './helpers.js';

let mock: MockServer;
/** Defaults: 8 GiB uploads, parts up to 64 MiB, an hour to complete. */
let besh: BeshProcess;
/** Uploads expire after 3 s (swept every 200 ms), at most 1 MiB, and the project may store 4000 bytes. */
let tight: BeshProcess;
let client: OpenAI;
const dirs: Array<{ path: string; remove(): void }> = [];

const TIGHT_MAX = 1024 * 1024;
const TIGHT_QUOTA = 4000;

beforeAll(async () => {
  mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 0 });
  const [d1, d2] = [tempDir(), tempDir()];
  dirs.push(d1, d2);
  [besh, tight] = await Promise.all([
    startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, LOG_LEVEL: 'warn' }, { dataDir: d1.path }),
    startBesh(
      {
        OPENAI_API_BASE: `${mock.url}/v1`,
        LOG_LEVEL: 'warn',
        BESH_UPLOAD_TTL: '3s',
        BESH_SWEEP_INTERVAL_MS: '200',
        BESH_MAX_UPLOAD_BYTES: String(TIGHT_MAX),
        BESH_PROJECT_MAX_STORED_BYTES: String(TIGHT_QUOTA),
      },
      { dataDir: d2.path },
    ),
  ]);
  client = besh.client;
});

afterAll(async () => {
  await Promise.all([besh?.stop(), tight?.stop()]);
  await mock?.close();
  for (const d of dirs) d.remove();
});

const partBlobs = async (p: BeshProcess, uploadId: string): Promise<string[]> => p.listBlobs(`uploads/${uploadId}/`);
const fileBlobs = (p: BeshProcess): Promise<string[]> => p.listBlobs('files/');
const tmpFiles = (p: BeshProcess): string[] => {
  const dir = join(p.dataDir, 'tmp');
  return existsSync(dir) ? readdirSync(dir) : [];
};
const content = async (c: OpenAI, fileId: string): Promise<string> => (await c.files.content(fileId)).text();

describe('Uploads API through the openai SDK', () => {
  it('three parts cut mid-line: one File, byte-exact, with OpenAI\'s Upload and Part shapes; the parts are removed', async () => {
    const text = chatLines(30);
    const buf = Buffer.from(text);
    const [a, b, c] = cut(buf, [1001, 2345]) as [Buffer, Buffer, Buffer];
    const created = await createUpload(client, buf.length, 'requests.jsonl');
    expect(created).toEqual({
      id: expect.stringMatching(/^upload_[0-9A-Za-z]+$/),
      object: 'upload',
      bytes: buf.length,
      created_at: expect.any(Number),
      filename: 'requests.jsonl',
      purpose: 'batch',
      status: 'pending',
      expires_at: created.created_at + 3600,
      file: null,
    });
    const part = await client.uploads.parts.create(created.id, { data: await toFile(a, 'a.bin') });
    expect(part).toEqual({ id: expect.stringMatching(/^part_[0-9A-Za-z]+$/), object: 'upload.part', created_at: expect.any(Number), upload_id: created.id });
    const ids = [part.id, await addPart(client, created.id, b), await addPart(client, created.id, c)];
    expect(await partBlobs(besh, created.id)).toHaveLength(3);

    const done = await client.uploads.complete(created.id, { part_ids: ids, md5: md5(buf) });
    expect(done).toMatchObject({ id: created.id, object: 'upload', status: 'completed', bytes: buf.length, filename: 'requests.jsonl', expires_at: created.expires_at });
    expect(done.file).toEqual({
      id: expect.stringMatching(/^file-/),
      object: 'file',
      bytes: buf.length,
      created_at: expect.any(Number),
      expires_at: done.file!.created_at + 30 * 86_400,
      filename: 'requests.jsonl',
      purpose: 'batch',
      status: 'processed',
      status_details: null,
    });
    expect(await content(client, done.file!.id)).toBe(text);
    expect(await client.files.retrieve(done.file!.id)).toEqual(done.file);
    expect(await partBlobs(besh, created.id)).toEqual([]);
    // Completing again (a retry whose answer was lost) gives the same File, and makes no other.
    const again = await client.uploads.complete(created.id, { part_ids: ids });
    expect(again.file?.id).toBe(done.file!.id);
    expect((await fileBlobs(besh)).filter((k) => k.includes(done.file!.id))).toHaveLength(1);
  });

  it('assembles the parts in the order of part_ids, not the order they arrived in', async () => {
    const lines = chatLines(30).split('\n').filter(Boolean).map((l) => `${l}\n`);
    const sections = [lines.slice(0, 10).join(''), lines.slice(10, 20).join(''), lines.slice(20).join('')].map((s) => Buffer.from(s));
    const total = sections.reduce((n, s) => n + s.length, 0);
    // Sent C, A, B (two of them in parallel); completed as A, B, C — and another upload as C, A, B.
    for (const order of [[0, 1, 2], [2, 0, 1]]) {
      const u = await createUpload(client, total);
      const c = await addPart(client, u.id, sections[2]!);
      const [a, b] = await Promise.all([addPart(client, u.id, sections[0]!), addPart(client, u.id, sections[1]!)]);
      const byIndex = [a, b, c];
      const expected = order.map((i) => sections[i]!.toString()).join('');
      const done = await client.uploads.complete(u.id, { part_ids: order.map((i) => byIndex[i]!), md5: md5(expected) });
      expect(await content(client, done.file!.id)).toBe(expected);
    }
  });

  it('a wrong md5 is a 400 and creates nothing; the upload stays pending and completes with the right one', async () => {
    const buf = Buffer.from(chatLines(5));
    const u = await createUpload(client, buf.length);
    const ids = [await addPart(client, u.id, buf.subarray(0, 100)), await addPart(client, u.id, buf.subarray(100))];
    const filesBefore = await fileBlobs(besh);
    const listed = (await client.files.list()).data.length;
    const err = await rejects(client.uploads.complete(u.id, { part_ids: ids, md5: '0'.repeat(32) }), BadRequestError, 400);
    expect(err.code).toBe('md5_mismatch');
    expect(err.param).toBe('md5');
    expect(err.message).toContain(md5(buf));
    // Reversed parts: the right md5 catches the wrong order too (the line check may not).
    expect((await rejects(client.uploads.complete(u.id, { part_ids: [...ids].reverse(), md5: md5(buf) }), BadRequestError, 400)).code).toMatch(/md5_mismatch|invalid_json_line/);
    expect(await fileBlobs(besh)).toEqual(filesBefore);
    expect((await client.files.list()).data).toHaveLength(listed);
    expect(tmpFiles(besh)).toEqual([]);
    expect(await partBlobs(besh, u.id)).toHaveLength(2);
    const done = await client.uploads.complete(u.id, { part_ids: ids, md5: md5(buf).toUpperCase() });
    expect(await content(client, done.file!.id)).toBe(buf.toString());
  });

  it('checks every line as a direct upload does: the line named across part boundaries; nothing created, still pending', async () => {
    const good = chatLines(3);
    const text = `${good}{"custom_id": "broken", \n${chatLines(2)}`;
    const buf = Buffer.from(text);
    const u = await createUpload(client, buf.length);
    const ids = [await addPart(client, u.id, buf.subarray(0, good.length - 7)), await addPart(client, u.id, buf.subarray(good.length - 7))];
    const filesBefore = await fileBlobs(besh);
    const err = await rejects(client.uploads.complete(u.id, { part_ids: ids }), BadRequestError, 400);
    expect(err.code).toBe('invalid_json_line');
    expect(err.message).toMatch(/^400 Line 4 is not valid JSON/);
    // The same answer as the same bytes sent directly.
    const direct = await rejects(client.files.create({ file: await toFile(buf, 'x.jsonl'), purpose: 'batch' }), BadRequestError, 400);
    expect(direct.message).toBe(err.message);
    expect(await fileBlobs(besh)).toEqual(filesBefore);
    // Still pending: it can be cancelled (its parts go).
    expect((await client.uploads.cancel(u.id)).status).toBe('cancelled');
    expect(await partBlobs(besh, u.id)).toEqual([]);
  });

  it('accepts gzip as a direct upload does: the parts are the compressed bytes, the File is stored decompressed', async () => {
    const text = chatLines(200);
    const gz = gzipSync(text);
    const done = await uploadInParts(client, cut(gz, [17, Math.floor(gz.length / 2)]), 'requests.jsonl.gz');
    expect(done.bytes).toBe(gz.length);
    expect(done.file).toMatchObject({ filename: 'requests.jsonl', bytes: Buffer.byteLength(text) });
    expect(await content(client, done.file!.id)).toBe(text);
  });

  it('the completed File is a batch input like any other, and the batch completes', async () => {
    const text = chatLines(40, { prefix: 'up' });
    const done = await uploadInParts(client, cut(Buffer.from(text), [500, 1500, 3000]));
    const batch = await client.batches.create({ input_file_id: done.file!.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const finished = await waitDone(client, batch.id, 60_000);
    expect(finished.status).toBe('completed');
    expect(finished.request_counts).toEqual({ total: 40, completed: 40, failed: 0 });
    const out = await readJsonl(client, finished.output_file_id);
    expect(out.map((l) => l.custom_id as string).sort()).toEqual(Array.from({ length: 40 }, (_, i) => `up-${i}`).sort());
  });

  it('cancel: the parts are removed, more parts or a completion are refused (409), a second cancel answers the same', async () => {
    const u = await createUpload(client, 1000);
    await addPart(client, u.id, Buffer.from(lineOfBytes(300)));
    await addPart(client, u.id, Buffer.from(lineOfBytes(300)));
    expect(await partBlobs(besh, u.id)).toHaveLength(2);
    const c = await client.uploads.cancel(u.id);
    expect(c).toMatchObject({ id: u.id, object: 'upload', status: 'cancelled', file: null });
    expect(await partBlobs(besh, u.id)).toEqual([]);
    const part = await rejects(addPart(client, u.id, Buffer.from('{}\n')), ConflictError, 409);
    expect(part.code).toBe('upload_not_pending');
    expect(part.message).toMatch(/is cancelled/);
    expect(part.headers?.get('x-should-retry')).toBe('false');
    expect((await rejects(client.uploads.complete(u.id, { part_ids: ['part_x'] }), ConflictError, 409)).code).toBe('upload_not_pending');
    expect((await client.uploads.cancel(u.id)).status).toBe('cancelled');
    expect(await partBlobs(besh, u.id)).toEqual([]);
    // A completed upload cannot be cancelled.
    const done = await uploadInParts(client, [Buffer.from(chatLines(1))]);
    expect((await rejects(client.uploads.cancel(done.id), ConflictError, 409)).code).toBe('upload_not_pending');
  });

  it('refuses parts past the declared bytes (nothing of them is kept), and completes with exactly the declared bytes', async () => {
    const u = await createUpload(client, 100);
    const first = await addPart(client, u.id, Buffer.from(lineOfBytes(60, 'a')));
    const over = await rejects(addPart(client, u.id, Buffer.from(lineOfBytes(41, 'b'))), BadRequestError, 400);
    expect(over.code).toBe('upload_bytes_exceeded');
    expect(over.message).toContain('100 bytes declared');
    expect(await partBlobs(besh, u.id)).toHaveLength(1);
    const second = await addPart(client, u.id, Buffer.from(lineOfBytes(40, 'b')));
    // Full: even one more byte is refused before it is read.
    expect((await rejects(addPart(client, u.id, Buffer.from('x')), BadRequestError, 400)).code).toBe('upload_bytes_exceeded');
    expect(tmpFiles(besh)).toEqual([]);
    const done = await client.uploads.complete(u.id, { part_ids: [first, second] });
    expect(done.file?.bytes).toBe(100);
  });

  it('refuses a part over 64 MiB (413, nothing left behind) and takes one of exactly 64 MiB', async () => {
    const MiB = 1024 * 1024;
    const u = await createUpload(client, 65 * MiB);
    const line = lineOfBytes(1024);
    const exact = Buffer.from(line.repeat(64 * 1024));
    expect(exact.length).toBe(64 * MiB);
    const tooBig = Buffer.concat([exact, Buffer.from('\n')]);
    const err = await rejects(addPart(client, u.id, tooBig), APIError, 413);
    expect(err.code).toBe('part_too_large');
    expect(await partBlobs(besh, u.id)).toEqual([]);
    expect(tmpFiles(besh)).toEqual([]);
    const ok = await addPart(client, u.id, exact);
    const rest = await addPart(client, u.id, Buffer.from(line.repeat(1024)));
    const done = await client.uploads.complete(u.id, { part_ids: [ok, rest] });
    expect(done.file?.bytes).toBe(65 * MiB);
  });

  it('refuses unknown, foreign and repeated part ids, and parts that do not add up to the declared bytes', async () => {
    const buf = Buffer.from(chatLines(4));
    const u = await createUpload(client, buf.length);
    const other = await createUpload(client, 10);
    const foreign = await addPart(client, other.id, Buffer.from('{"a":1}\n'));
    const p1 = await addPart(client, u.id, buf.subarray(0, 50));
    const p2 = await addPart(client, u.id, buf.subarray(50));
    const cases: Array<[string[], string]> = [
      [[p1, 'part_doesnotexist'], 'part_not_found'],
      [[p1, p2, foreign], 'part_not_found'],
      [[p1, p2, p1], 'duplicate_part_id'],
      [[p1], 'upload_size_mismatch'],
      [[], 'invalid_value'],
    ];
    for (const [ids, code] of cases) {
      const e = await rejects(client.uploads.complete(u.id, { part_ids: ids }), BadRequestError, 400);
      expect(e.code, ids.join(',')).toBe(code);
      expect(e.param).toBe('part_ids');
    }
    expect((await postJson(besh, `/uploads/${u.id}/complete`, {})).body.error).toMatchObject({ code: 'missing_required_parameter', param: 'part_ids' });
    expect((await postJson(besh, `/uploads/${u.id}/complete`, { part_ids: [p1, p2], md5: 'abc' })).body.error).toMatchObject({ code: 'invalid_value', param: 'md5' });
    expect((await client.uploads.complete(u.id, { part_ids: [p1, p2] })).status).toBe('completed');
  });

  it('create: only purpose batch, a .jsonl name, a positive size within BESH_MAX_UPLOAD_BYTES; every field required', async () => {
    const base = { filename: 'a.jsonl', purpose: 'batch' as const, bytes: 10, mime_type: 'application/jsonl' };
    const fine = await rejects(client.uploads.create({ ...base, purpose: 'fine-tune' }), BadRequestError, 400);
    expect(fine.message).toBe("400 BESH stores files for the Batch API only: purpose must be 'batch', got 'fine-tune'.");
    expect(fine.code).toBe('invalid_value');
    const bad = await postJson(besh, '/uploads', { ...base, purpose: 'nonsense' });
    expect(bad.body.error).toMatchObject({ code: 'invalid_value', param: 'purpose' });
    expect((await rejects(client.uploads.create({ ...base, filename: 'a.csv' }), BadRequestError, 400)).code).toBe('invalid_file_format');
    expect((await rejects(client.uploads.create({ ...base, bytes: 0 }), BadRequestError, 400)).code).toBe('invalid_value');
    const huge = await postJson(besh, '/uploads', { ...base, bytes: 8 * 1024 ** 3 + 1 });
    expect(huge.status).toBe(413);
    expect(huge.body.error).toMatchObject({ code: 'upload_too_large', param: 'bytes', type: 'invalid_request_error' });
    expect((await postJson(besh, '/uploads', { ...base, bytes: 8 * 1024 ** 3 })).status).toBe(200);
    for (const field of ['filename', 'purpose', 'bytes', 'mime_type']) {
      const { [field]: _, ...rest } = base as Record<string, unknown>;
      const r = await postJson(besh, '/uploads', rest);
      expect(r.status, field).toBe(400);
      expect(r.body.error, field).toMatchObject({ code: 'missing_required_parameter', param: field });
    }
    expect((await postJson(besh, '/uploads', { ...base, bytes: '10' })).body.error).toMatchObject({ code: 'invalid_type', param: 'bytes' });
    const ea = await postJson(besh, '/uploads', { ...base, expires_after: { anchor: 'created_at', seconds: 60 } });
    expect(ea.body.error).toMatchObject({ code: 'invalid_value', param: 'expires_after.seconds' });
    // A .jsonl.gz name is the .jsonl it will be stored as.
    expect((await client.uploads.create({ ...base, filename: 'dir/x.jsonl.gz' })).filename).toBe('x.jsonl');
  });

  it('expires_after sets the completed File\'s lifetime, as for a direct upload', async () => {
    const buf = Buffer.from(chatLines(2));
    const u = await client.uploads.create({ bytes: buf.length, filename: 'x.jsonl', mime_type: 'text/jsonl', purpose: 'batch', expires_after: { anchor: 'created_at', seconds: 7200 } });
    const done = await client.uploads.complete(u.id, { part_ids: [await addPart(client, u.id, buf)] });
    expect(done.file!.expires_at).toBe(done.file!.created_at + 7200);
  });

  it('unknown uploads answer 404 on every route; a part needs a multipart body with one data field', async () => {
    for (const id of ['upload_doesnotexist', 'file-abc', 'nonsense']) {
      expect((await rejects(addPart(client, id, Buffer.from('{}\n')), NotFoundError, 404)).code).toBe('upload_not_found');
      expect((await rejects(client.uploads.complete(id, { part_ids: ['part_x'] }), NotFoundError, 404)).code).toBe('upload_not_found');
      expect((await rejects(client.uploads.cancel(id), NotFoundError, 404)).code).toBe('upload_not_found');
    }
    const u = await createUpload(client, 100);
    expect((await postJson(besh, `/uploads/${u.id}/parts`, { data: 'x' })).body.error.code).toBe('invalid_content_type');
    expect((await postPart(besh, u.id, Buffer.from('{}\n'), 'file')).body.error).toMatchObject({ param: 'data' });
    const form = new FormData();
    form.append('note', 'no data');
    expect((await raw(besh, `/uploads/${u.id}/parts`, { method: 'POST', body: form })).body.error).toMatchObject({ code: 'missing_required_parameter', param: 'data' });
    expect((await postPart(besh, u.id, Buffer.alloc(0))).body.error).toMatchObject({ code: 'invalid_value', param: 'data' });
    expect(await partBlobs(besh, u.id)).toEqual([]);
    expect(tmpFiles(besh)).toEqual([]);
  });

  it('GET /v1/uploads/limits says what the server takes', async () => {
    expect((await raw(besh, '/uploads/limits')).body).toEqual({
      object: 'upload.limits',
      max_file_bytes: 512 * 1024 * 1024,
      max_upload_bytes: 8 * 1024 ** 3,
      max_part_bytes: 64 * 1024 * 1024,
      upload_ttl_seconds: 3600,
    });
  });
});

describe('Uploads API: expiry, limits and quota', () => {
  it('an upload not completed expires (BESH_UPLOAD_TTL) and its parts are removed; then parts and completion are refused', async () => {
    const c = tight.client;
    const u = await createUpload(c, 1000);
    expect(u.expires_at - u.created_at).toBe(3);
    await addPart(c, u.id, Buffer.from(lineOfBytes(200)));
    await addPart(c, u.id, Buffer.from(lineOfBytes(200)));
    expect(await partBlobs(tight, u.id)).toHaveLength(2);
    await eventually(() => tight.listBlobs('uploads/'), (keys) => keys.length === 0, 10_000, 'the expired parts to be removed');
    const e = await rejects(addPart(c, u.id, Buffer.from('{}\n')), ConflictError, 409);
    expect(e.message).toMatch(/is expired/);
    expect((await rejects(c.uploads.complete(u.id, { part_ids: ['part_x'] }), ConflictError, 409)).message).toMatch(/is expired/);
    expect((await rejects(c.uploads.cancel(u.id), ConflictError, 409)).message).toMatch(/is expired/);
  });

  it('declared bytes over BESH_MAX_UPLOAD_BYTES: 413 at create; gzip that decompresses past it: 413 at completion, nothing stored', async () => {
    const c = tight.client;
    const e = await postJson(tight, '/uploads', { filename: 'a.jsonl', purpose: 'batch', bytes: TIGHT_MAX + 1, mime_type: 'application/jsonl' });
    expect(e.status).toBe(413);
    expect(e.body.error.code).toBe('upload_too_large');
    const bomb = gzipSync(lineOfBytes(TIGHT_MAX + 10));
    const u = await createUpload(c, bomb.length, 'bomb.jsonl.gz');
    const ids = [await addPart(c, u.id, bomb)];
    const r = await postJson(tight, `/uploads/${u.id}/complete`, { part_ids: ids });
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('upload_too_large');
    expect(await fileBlobs(tight)).toEqual([]);
    expect(tmpFiles(tight)).toEqual([]);
  });

  it('the stored-bytes quota: refused at create on the declared size, and at completion on the real size (gzip); nothing stored', async () => {
    const c = tight.client;
    const e = await postJson(tight, '/uploads', { filename: 'a.jsonl', purpose: 'batch', bytes: TIGHT_QUOTA + 1, mime_type: 'application/jsonl' });
    expect(e.status).toBe(429);
    expect(e.body.error.code).toBe('storage_quota_exceeded');
    expect(e.headers.get('x-should-retry')).toBe('false');
    const gz = gzipSync(lineOfBytes(TIGHT_QUOTA + 100));
    expect(gz.length).toBeLessThan(TIGHT_QUOTA);
    const u = await createUpload(c, gz.length, 'q.jsonl.gz');
    const r = await postJson(tight, `/uploads/${u.id}/complete`, { part_ids: [await addPart(c, u.id, gz)] });
    expect(r.status).toBe(429);
    expect(r.body.error.code).toBe('storage_quota_exceeded');
    expect(await fileBlobs(tight)).toEqual([]);
    expect((await c.files.list()).data).toEqual([]);
  });
});

describe('Uploads API: projects', () => {
  let keyed: BeshProcess;
  const d = tempDir();
  beforeAll(async () => {
    dirs.push(d);
    const [alpha, beta, admin] = await Promise.all([createKey(d.path, 'alpha'), createKey(d.path, 'beta'), createKey(d.path, 'ops', { admin: true })]);
    keyed = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, LOG_LEVEL: 'warn' }, { dataDir: d.path });
    keys = { alpha: alpha.key, beta: beta.key, admin: admin.key };
  });
  afterAll(async () => {
    await keyed?.stop();
  });
  let keys: Record<'alpha' | 'beta' | 'admin', string>;

  it("another project's upload answers 404 as a missing one; the File belongs to the upload's project", async () => {
    const alpha = keyClient(keyed, keys.alpha);
    const beta = keyClient(keyed, keys.beta);
    const buf = Buffer.from(chatLines(3));
    const u = await createUpload(alpha, buf.length);
    const p1 = await addPart(alpha, u.id, buf.subarray(0, 99));
    expect((await rejects(addPart(beta, u.id, buf.subarray(99)), NotFoundError, 404)).code).toBe('upload_not_found');
    expect((await rejects(beta.uploads.complete(u.id, { part_ids: [p1] }), NotFoundError, 404)).code).toBe('upload_not_found');
    expect((await rejects(beta.uploads.cancel(u.id), NotFoundError, 404)).code).toBe('upload_not_found');
    // An admin key sees every project's uploads; the parts may come from any key of the project.
    const p2 = await addPart(keyClient(keyed, keys.admin), u.id, buf.subarray(99));
    const done = await alpha.uploads.complete(u.id, { part_ids: [p1, p2] });
    expect((await alpha.files.retrieve(done.file!.id)).id).toBe(done.file!.id);
    await rejects(beta.files.retrieve(done.file!.id), NotFoundError, 404);
    expect((await keyClient(keyed, keys.admin).files.list({ purpose: 'batch' })).data.map((f) => f.id)).toContain(done.file!.id);
    // Without a key: refused before anything else.
    expect((await raw(keyed, `/uploads/${u.id}/cancel`, { method: 'POST' })).status).toBe(401);
  });
});
