import { existsSync, readdirSync, statfsSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';

let mock: MockServer;
let besh: BeshProcess; // short TTLs, fast sweeper
let full: BeshProcess; // free-space floor above any disk
const dirs: Array<{ path: string; remove(): void }> = [];

beforeAll(async () => {
  mock = await startMockServer({ host: '127.0.0.1', port: 0 });
  const d1 = tempDir();
  const d2 = tempDir();
  dirs.push(d1, d2);
  [besh, full] = await Promise.all([
    startBesh(
      {
        OPENAI_API_BASE: `${mock.url}/v1`,
        BESH_INPUT_FILE_TTL: '3s',
        BESH_OUTPUT_FILE_TTL: '2s',
        BESH_SWEEP_INTERVAL_MS: '200',
        BESH_SHUTDOWN_GRACE_MS: '300',
        MAX_WORKERS: '4',
        LOG_LEVEL: 'warn',
      },
      { dataDir: d1.path },
    ),
    startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, BESH_MIN_FREE_BYTES: String(10 ** 15), LOG_LEVEL: 'warn' }, { dataDir: d2.path }),
  ]);
});

afterAll(async () => {
  await Promise.all([besh?.stop(), full?.stop()]);
  await mock?.close();
  for (const d of dirs) d.remove();
});

const listDir = (p: BeshProcess, sub: string): string[] => {
  const dir = join(p.dataDir, sub);
  return existsSync(dir) ? readdirSync(dir).sort() : [];
};
const blobExists = (p: BeshProcess, fileId: string): boolean => existsSync(join(p.dataDir, 'files', `${fileId}.jsonl`));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function uploadForm(p: BeshProcess, fields: Record<string, string>, body = chatLines(2)): Promise<{ status: number; body: any }> {
  const form = new FormData();
  form.append('purpose', 'batch');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append('file', new Blob([body]), 'in.jsonl');
  const r = await fetch(`${p.baseURL}/files`, { method: 'POST', body: form });
  return { status: r.status, body: await r.json() };
}

describe('file expiry', () => {
  it('honours expires_after from the official SDK', async () => {
    const f = await besh.client.files.create({
      file: await toFile(Buffer.from(chatLines(1)), 'a.jsonl'),
      purpose: 'batch',
      expires_after: { anchor: 'created_at', seconds: 7200 },
    });
    expect(f.expires_at).toBe(f.created_at + 7200);
    expect((await besh.client.files.retrieve(f.id)).expires_at).toBe(f.created_at + 7200);
  });

  it('applies BESH_INPUT_FILE_TTL by default', async () => {
    const f = await besh.client.files.create({ file: await toFile(Buffer.from(chatLines(1)), 'b.jsonl'), purpose: 'batch' });
    expect(f.expires_at).toBe(f.created_at + 3);
  });

  it('rejects bad expires_after values with a 400 naming the parameter, storing nothing', async () => {
    const before = listDir(besh, 'files');
    const cases: Array<[Record<string, string>, string, string]> = [
      [{ 'expires_after[anchor]': 'created_at', 'expires_after[seconds]': '60' }, 'expires_after[seconds]', 'invalid_value'],
      [{ 'expires_after[anchor]': 'created_at', 'expires_after[seconds]': '2592001' }, 'expires_after[seconds]', 'invalid_value'],
      [{ 'expires_after[anchor]': 'created_at', 'expires_after[seconds]': 'soon' }, 'expires_after[seconds]', 'invalid_value'],
      [{ 'expires_after[anchor]': 'last_used_at', 'expires_after[seconds]': '3600' }, 'expires_after[anchor]', 'invalid_value'],
      [{ 'expires_after[anchor]': 'created_at' }, 'expires_after[seconds]', 'missing_required_parameter'],
      [{ 'expires_after[seconds]': '3600' }, 'expires_after[anchor]', 'missing_required_parameter'],
    ];
    for (const [fields, param, code] of cases) {
      const r = await uploadForm(besh, fields);
      expect(r.status, JSON.stringify(fields)).toBe(400);
      expect(r.body.error).toMatchObject({ type: 'invalid_request_error', param, code });
    }
    const ok = await uploadForm(besh, { 'expires_after[anchor]': 'created_at', 'expires_after[seconds]': '3600' });
    expect(ok.status).toBe(200);
    expect(ok.body.expires_at).toBe(ok.body.created_at + 3600);
    expect(listDir(besh, 'files')).toEqual([...before, `${ok.body.id}.jsonl`].sort());
    expect(listDir(besh, 'tmp')).toEqual([]);
  });

  it('sweeps expired files (row and bytes) but keeps the input of a running batch until it ends', async () => {
    const c = besh.client;
    const idle = await upload(c, chatLines(2), 'idle.jsonl');
    // Every request hangs, so the batch stays in_progress until cancelled.
    const busy = await upload(c, chatLines(3, { marker: () => 'MOCK_HANG' }), 'busy.jsonl');
    const batch = await c.batches.create({ input_file_id: busy, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(c, batch.id, (b) => b.status === 'in_progress');
    expect(blobExists(besh, idle)).toBe(true);

    // Both expire after 3 s; the sweeper runs every 200 ms.
    await sleep(4000);
    await expect(c.files.retrieve(idle)).rejects.toMatchObject({ status: 404 });
    expect(blobExists(besh, idle)).toBe(false);
    expect((await c.files.retrieve(busy)).id).toBe(busy);
    expect(blobExists(besh, busy)).toBe(true);

    // A batch can no longer be created from an expired file.
    const sneaky = c.batches.create({ input_file_id: busy, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await expect(sneaky).rejects.toMatchObject({ status: 404 });

    await c.batches.cancel(batch.id);
    const done = await waitDone(c, batch.id, 10_000);
    expect(done.status).toBe('cancelled');
    expect(done.error_file_id).toBeTruthy();
    const errFile = await c.files.retrieve(done.error_file_id!);
    expect(errFile.expires_at).toBe(errFile.created_at + 2); // BESH_OUTPUT_FILE_TTL

    // Finished: its input, then its error file (2 s TTL), go at the next sweeps.
    const deadline = Date.now() + 5000;
    const errorBlob = join(besh.dataDir, 'batches', batch.id, 'errors.jsonl');
    while ((blobExists(besh, busy) || existsSync(errorBlob)) && Date.now() < deadline) await sleep(100);
    await expect(c.files.retrieve(busy)).rejects.toMatchObject({ status: 404 });
    await expect(c.files.retrieve(done.error_file_id!)).rejects.toMatchObject({ status: 404 });
    expect(blobExists(besh, busy)).toBe(false);
    expect(existsSync(errorBlob)).toBe(false);
    // The batch itself stays (OpenAI keeps it and its file ids).
    expect((await c.batches.retrieve(batch.id)).error_file_id).toBe(done.error_file_id);
  });
});

describe('GET /v1/batches/status', () => {
  it('reports load and storage', async () => {
    const r = await fetch(`${besh.baseURL}/batches/status`);
    expect(r.status).toBe(200);
    const s = (await r.json()) as any;
    expect(s).toMatchObject({ active_batches: expect.any(Number), queued_batches: 0, max_workers: 4, max_concurrent_batches: 10, in_flight: expect.any(Number) });
    expect(Object.keys(s.storage).sort()).toEqual(['bytes_by_purpose', 'free_bytes', 'free_floor_bytes', 'total_bytes']);
    expect(s.storage.bytes_by_purpose).toMatchObject({ batch: expect.any(Number), batch_output: expect.any(Number) });
    expect(s.storage.total_bytes).toBe(Object.values(s.storage.bytes_by_purpose as Record<string, number>).reduce((a, b) => a + b, 0));
    expect(s.storage.free_bytes).toBeGreaterThan(0);
    expect(s.storage.free_floor_bytes).toBe(1024 ** 3);
  });

  it('counts the bytes of a new upload', async () => {
    const get = async (): Promise<any> => (await (await fetch(`${besh.baseURL}/batches/status`)).json());
    const before = (await get()).storage.bytes_by_purpose.batch;
    const text = chatLines(5);
    const f = await upload(besh.client, text, 'count.jsonl');
    expect((await get()).storage.bytes_by_purpose.batch - before).toBe(Buffer.byteLength(text));
    await besh.client.files.delete(f);
  });
});

describe('free-space floor', () => {
  it('refuses an upload that would cross BESH_MIN_FREE_BYTES with 507 insufficient_storage, storing nothing', async () => {
    const err = await full.client.files
      .create({ file: await toFile(Buffer.from(chatLines(3)), 'x.jsonl'), purpose: 'batch' })
      .then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(507);
    expect((err as any).error).toMatchObject({ type: 'server_error', code: 'insufficient_storage', param: 'file' });
    expect((err as any).error.message).toMatch(/BESH_MIN_FREE_BYTES/);
    expect(listDir(full, 'files')).toEqual([]);
    expect(listDir(full, 'tmp')).toEqual([]);
    expect((await full.client.files.list()).data).toEqual([]);
  });

  it('stops a chunked upload (no content-length) that crosses the floor while streaming', async () => {
    const d = tempDir();
    dirs.push(d);
    // Floor 8 MiB below the free space now: a 256 MiB chunked upload must be cut on the way, even if
    // other test files free some space meanwhile.
    const st = statfsSync(tmpdir());
    const free = st.bavail * st.bsize;
    const p = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, BESH_MIN_FREE_BYTES: String(free - 8 * 1024 * 1024), LOG_LEVEL: 'warn' }, { dataDir: d.path });
    try {
      const boundary = 'besh-boundary';
      const line = `${JSON.stringify({ custom_id: 'x', method: 'POST', url: '/v1/chat/completions', body: { model: 'm', messages: [], pad: 'p'.repeat(1000) } })}\n`;
      const chunk = Buffer.from(line.repeat(Math.floor((1024 * 1024) / line.length)));
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        start(ctl) {
          ctl.enqueue(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n`));
        },
        pull(ctl) {
          if (sent >= 256) {
            ctl.enqueue(Buffer.from(`\r\n--${boundary}--\r\n`));
            ctl.close();
            return;
          }
          sent++;
          ctl.enqueue(chunk);
        },
      });
      const r = await fetch(`${p.baseURL}/files`, {
        method: 'POST',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
        body,
        duplex: 'half',
      }).then(
        async (res) => ({ status: res.status, body: (await res.json()) as any }),
        (e: unknown) => ({ status: 0, body: String(e) }),
      );
      // Normally the 507 answer; a client may also see the connection cut.
      if (r.status !== 0) {
        expect(r.status).toBe(507);
        expect(r.body.error.code).toBe('insufficient_storage');
      }
      expect(sent).toBeLessThan(64);
      await sleep(200);
      expect(listDir(p, 'files')).toEqual([]);
      expect(listDir(p, 'tmp')).toEqual([]);
    } finally {
      await p.stop();
    }
  });
});

describe('interrupted upload', () => {
  it('leaves nothing in files/ or tmp/ when the client cuts the connection mid-upload', async () => {
    const before = listDir(besh, 'files');
    const boundary = 'cut-boundary';
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n`;
    const lines = chatLines(2000);
    const port = besh.port;
    await new Promise<void>((resolve, reject) => {
      const sock = connect(port, '127.0.0.1', () => {
        sock.write(
          `POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${head.length + lines.length * 4}\r\n\r\n`,
        );
        sock.write(head);
        sock.write(lines.slice(0, Math.floor(lines.length / 2)));
        // Let the server start writing the blob, then drop the connection.
        setTimeout(() => {
          expect(listDir(besh, 'tmp').length).toBe(1); // the partial upload exists while streaming
          sock.destroy();
          resolve();
        }, 300);
      });
      sock.on('error', reject);
    });
    const deadline = Date.now() + 3000;
    while (listDir(besh, 'tmp').length > 0 && Date.now() < deadline) await sleep(50);
    expect(listDir(besh, 'tmp')).toEqual([]);
    expect(listDir(besh, 'files')).toEqual(before);
    // The server is fine afterwards.
    expect((await fetch(`${besh.url}/health`)).status).toBe(200);
  });
});
