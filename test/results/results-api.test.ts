/**
 * GET /v1/batches/{id}/results on one `besh serve` (SQLite, local disk: one growing segment per
 * shard lease): a cursor followed while the batch runs yields every line exactly once; cursors
 * taken before finalization keep working after it; custom_id lookups; bad cursors; tenancy.
 */
import { randomBytes } from 'node:crypto';
import { get as httpGet, type IncomingMessage } from 'node:http';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { emptyCursor, encodeCursor } from '../../src/api/results-cursor.js';
import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { createKey, keyClient } from '../helpers/keys.js';
import { blobsSettled, customIdOf, fileText, follow, getResults, minus, sorted, splitLines } from './results-helpers.js';

const ADMIN_KEY = `admin-${randomBytes(16).toString('hex')}`;
const FAIL = (i: number): string | undefined => (i % 10 === 3 ? 'MOCK_FAIL_400' : undefined);

describe('results while a batch runs (one node, local disk)', () => {
  let mock: MockServer;
  let dir: { path: string; remove(): void };
  let besh: BeshProcess;
  let alphaKey: string;
  let betaKey: string;

  beforeAll(async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 4 });
    dir = tempDir('besh-results-');
    alphaKey = (await createKey(dir.path, 'alpha')).key;
    betaKey = (await createKey(dir.path, 'beta')).key;
    besh = await startBesh(
      {
        OPENAI_API_BASE: `${mock.url}/v1`,
        BESH_ADMIN_KEY: ADMIN_KEY,
        BESH_RETRY_BASE_MS: '20',
        BESH_PROGRESS_FLUSH_MS: '100',
        BESH_SHUTDOWN_GRACE_MS: '300',
        MAX_WORKERS: '8',
        LOG_LEVEL: 'warn',
      },
      { dataDir: dir.path },
    );
  });
  afterAll(async () => {
    await besh?.kill();
    await mock?.close();
    dir?.remove();
  });

  const alpha = () => keyClient(besh, alphaKey);

  async function start(n: number, prefix: string, marker = FAIL): Promise<string> {
    const input = await upload(alpha(), chatLines(n, { prefix, marker }), `${prefix}.jsonl`);
    return (await alpha().batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' })).id;
  }

  it('a cursor followed across the running batch gives every line exactly once; cursors taken before finalization stay valid after it', async () => {
    const N = 2000;
    const id = await start(N, 'run');
    const started = Date.now();
    // Three readers at once: everything, only the output, only the errors.
    const [all, out, err] = await Promise.all(['all', 'output', 'error'].map((kind) => follow(besh.baseURL, id, { kind, key: alphaKey })));
    const followMs = Date.now() - started;
    const done = await waitDone(alpha(), id);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: N, completed: N - N / 10, failed: N / 10 });
    const outputLines = splitLines(await fileText(besh.baseURL, done.output_file_id, alphaKey));
    const errorLines = splitLines(await fileText(besh.baseURL, done.error_file_id, alphaKey));
    expect(outputLines).toHaveLength(N - N / 10);
    expect(errorLines).toHaveLength(N / 10);

    const read = splitLines(all!.pages.join(''));
    // Exactly once: as many lines as requests, each custom_id once, and the same multiset as the files.
    expect(read).toHaveLength(N);
    expect(new Set(read.map(customIdOf)).size).toBe(N);
    expect(sorted(read)).toEqual(sorted([...outputLines, ...errorLines]));
    expect(sorted(splitLines(out!.pages.join('')))).toEqual(sorted(outputLines));
    expect(sorted(splitLines(err!.pages.join('')))).toEqual(sorted(errorLines));

    // The reads really happened while the batch ran: several pages with lines before it ended.
    const live = all!.marks.filter((m, i) => m.status === 'in_progress' && all!.pages[i] !== '');
    expect(live.length, `pages while in_progress (followed for ${followMs} ms)`).toBeGreaterThanOrEqual(3);
    expect(all!.marks.at(-1)!.linesSoFar).toBe(N);

    // Every cursor taken while the batch ran, used now that it is finalized (segments composed and
    // removed): exactly the lines after it.
    const old = all!.marks.filter((m) => m.status === 'in_progress' && m.linesSoFar > 0 && m.linesSoFar < N);
    expect(old.length).toBeGreaterThan(0);
    for (const m of [old[0]!, old[Math.floor(old.length / 2)]!, old.at(-1)!]) {
      const r = await getResults(besh.baseURL, id, { after: m.cursor }, { key: alphaKey });
      expect(r.status).toBe(200);
      expect(r.complete).toBe(true);
      expect(r.batchStatus).toBe('completed');
      const before = splitLines(all!.pages.slice(0, all!.marks.indexOf(m) + 1).join(''));
      expect(before).toHaveLength(m.linesSoFar);
      expect(sorted(splitLines(r.text))).toEqual(sorted(minus(read, before)));
      // …and its end cursor says there is nothing more.
      const end = await getResults(besh.baseURL, id, { after: r.cursor! }, { key: alphaKey });
      expect(end.text).toBe('');
      expect(end.complete).toBe(true);
    }
    // A read from the start of the finished batch is its two files (output lines first, by shard).
    const whole = await getResults(besh.baseURL, id, {}, { key: alphaKey });
    expect(whole.text).toBe([...outputLines, ...errorLines].map((l) => `${l}\n`).join(''));
    expect((await getResults(besh.baseURL, id, { kind: 'error' }, { key: alphaKey })).text).toBe(await fileText(besh.baseURL, done.error_file_id, alphaKey));
    // The segments are gone: the finished batch is read through its map.
    const expected = ['custom-ids.idx', 'errors.jsonl', 'output.jsonl', 'results-map.json'].map((f) => `batches/${id}/${f}`);
    expect(await blobsSettled((p) => besh.listBlobs(p), `batches/${id}/`, expected)).toEqual(expected);
  });

  it('a page being sent while its batch is finalized (its segments composed and removed) is sent whole, from the files', async () => {
    // Large lines (16 choices of 256 tokens, ~20 KB each), so that a page is far larger than what
    // the sockets buffer: the server is still reading segments when the reader pauses.
    const N = 1500;
    const lines = Array.from({ length: N }, (_, i) =>
      JSON.stringify({ custom_id: `big-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'm', messages: [{ role: 'user', content: `q ${i}` }], max_tokens: 256, ignore_eos: true, n: 16 } }),
    );
    const input = await upload(alpha(), `${lines.join('\n')}\n`, 'big.jsonl');
    const id = (await alpha().batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' })).id;
    await waitFor(alpha(), id, (b) => (b.request_counts?.completed ?? 0) >= N / 2);
    const page = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpGet(`${besh.baseURL}/batches/${id}/results`, { headers: { authorization: `Bearer ${alphaKey}` } }, resolve);
      req.once('error', reject);
    });
    expect(page.statusCode).toBe(200);
    expect(page.headers['x-besh-batch-status']).toBe('in_progress');
    const length = Number(page.headers['content-length']);
    expect(length).toBeGreaterThan(16 * 1024 * 1024);
    const chunks: Buffer[] = [];
    page.pause();
    const done = await waitDone(alpha(), id);
    expect(done.status).toBe('completed');
    const expected = ['custom-ids.idx', 'output.jsonl', 'results-map.json'].map((f) => `batches/${id}/${f}`);
    expect(await blobsSettled((p) => besh.listBlobs(p), `batches/${id}/`, expected)).toEqual(expected);
    const body = await new Promise<string>((resolve, reject) => {
      page.on('data', (c: Buffer) => chunks.push(c));
      page.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      page.once('error', reject);
      page.resume();
    });
    expect(Buffer.byteLength(body)).toBe(length);
    expect(body.endsWith('\n')).toBe(true);
    const output = splitLines(await fileText(besh.baseURL, done.output_file_id, alphaKey));
    const first = splitLines(body);
    const rest = await getResults(besh.baseURL, id, { after: page.headers['x-besh-cursor'] as string }, { key: alphaKey });
    expect(rest.complete).toBe(true);
    const read = [...first, ...splitLines(rest.text)];
    expect(first.length).toBeGreaterThanOrEqual(N / 2);
    expect(read).toHaveLength(N);
    expect(sorted(read)).toEqual(sorted(output));
  });

  it('custom_id: the line of one request, from the segments while running and from the files after; not ready and not found are told apart', async () => {
    // Line 7 hangs (never answered) until the batch is cancelled.
    const N = 400;
    const id = await start(N, 'look', (i) => (i === 7 ? 'MOCK_HANG' : FAIL(i)));
    await waitFor(alpha(), id, (b) => (b.request_counts?.completed ?? 0) + (b.request_counts?.failed ?? 0) >= N - 1);
    const lookup = (cid: string) => getResults(besh.baseURL, id, { custom_id: cid }, { key: alphaKey });

    const ok = await lookup('look-12');
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-besh-result-kind')).toBe('output');
    expect(ok.headers.get('content-type')).toMatch(/^application\/jsonl/);
    expect(ok.text.endsWith('\n')).toBe(true);
    expect(JSON.parse(ok.text)).toMatchObject({ custom_id: 'look-12', response: { status_code: 200 }, error: null });
    const failed = await lookup('look-13');
    expect(failed.status).toBe(200);
    expect(failed.headers.get('x-besh-result-kind')).toBe('error');
    expect(JSON.parse(failed.text)).toMatchObject({ custom_id: 'look-13', response: { status_code: 400 } });

    const notReady = await lookup('look-7');
    expect(notReady.status).toBe(404);
    expect(notReady.body.error).toMatchObject({ type: 'invalid_request_error', param: 'custom_id', code: 'result_not_ready' });
    const missing = await lookup('look-400');
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ type: 'invalid_request_error', param: 'custom_id', code: 'custom_id_not_found' });

    await alpha().batches.cancel(id);
    const done = await waitDone(alpha(), id);
    expect(done.status).toBe('cancelled');
    const files = [...splitLines(await fileText(besh.baseURL, done.output_file_id, alphaKey)), ...splitLines(await fileText(besh.baseURL, done.error_file_id, alphaKey))];
    for (const cid of ['look-12', 'look-13', 'look-7', 'look-0', `look-${N - 1}`]) {
      const r = await lookup(cid);
      expect(r.status, `${cid}: ${r.text}`).toBe(200);
      expect(files).toContain(r.text.slice(0, -1));
      expect(customIdOf(r.text)).toBe(cid);
    }
    expect((await lookup('look-7')).headers.get('x-besh-result-kind')).toBe('error');
    expect((await lookup('look-12')).text).toBe(ok.text);
    expect((await lookup('nope')).body.error.code).toBe('custom_id_not_found');
  });

  it('malformed, foreign, altered and impossible cursors are 400 invalid_cursor in the OpenAI envelope; bad parameters are 400', async () => {
    const a = await start(150, 'cur-a');
    const b = await start(150, 'cur-b');
    await Promise.all([waitDone(alpha(), a), waitDone(alpha(), b)]);
    const aCursor = (await getResults(besh.baseURL, a, {}, { key: alphaKey })).cursor!;
    const early = encodeCursor(a, emptyCursor());
    expect((await getResults(besh.baseURL, a, { after: early }, { key: alphaKey })).status).toBe(200);

    const huge = emptyCursor();
    huge.output.closed.add(5000);
    const ahead = emptyCursor();
    ahead.output.offsets.set(0, 10 ** 9);
    const flipped = aCursor.slice(0, -2) + (aCursor.at(-2) === 'A' ? 'B' : 'A') + aCursor.at(-1);
    const cases: Array<[string, string]> = [
      ['garbage', 'not a cursor!'],
      ['too short', 'AAAA'],
      ['another batch', aCursor],
      ['altered', flipped],
      ['unknown version', Buffer.concat([Buffer.from([9]), Buffer.alloc(6)]).toString('base64url')],
      ['too long', 'A'.repeat(10_000)],
    ];
    for (const [label, after] of cases) {
      const batch = label === 'another batch' ? b : a;
      const r = await getResults(besh.baseURL, batch, { after }, { key: alphaKey });
      expect(r.status, label).toBe(400);
      expect(r.body, label).toEqual({ error: { message: expect.stringContaining("'after'"), type: 'invalid_request_error', param: 'after', code: 'invalid_cursor' } });
      expect(r.headers.get('x-request-id'), label).toBeTruthy();
    }
    for (const [label, c] of [
      ['a shard the batch does not have', huge],
      ['past the end of a stream', ahead],
    ] as const) {
      const r = await getResults(besh.baseURL, a, { after: encodeCursor(a, c) }, { key: alphaKey });
      expect(r.status, label).toBe(400);
      expect(r.body.error.code, label).toBe('invalid_cursor');
    }
    for (const q of [{ kind: 'outputs' }, { custom_id: 'x', after: aCursor }, { custom_id: 'x', kind: 'output' }, { custom_id: '' }, { kind: 'toString' }, { custom_id: 'x'.repeat(513) }]) {
      const r = await getResults(besh.baseURL, a, q, { key: alphaKey });
      expect(r.status, JSON.stringify(q)).toBe(400);
      expect(r.body.error.code).toBe('invalid_value');
    }
    // A parameter given twice.
    for (const qs of ['custom_id=a&custom_id=b', 'after=x&after=y', 'kind=output&kind=error']) {
      const r = await fetch(`${besh.baseURL}/batches/${a}/results?${qs}`, { headers: { authorization: `Bearer ${alphaKey}` } });
      expect(r.status, qs).toBe(400);
      expect(((await r.json()) as any).error.type).toBe('invalid_request_error');
    }
  });

  it('is scoped like every batch route: another project’s batch answers exactly like a missing one', async () => {
    const id = await start(120, 'ten');
    await waitDone(alpha(), id);
    const line = (await getResults(besh.baseURL, id, { custom_id: 'ten-1' }, { key: alphaKey })).text;
    expect(customIdOf(line)).toBe('ten-1');
    // The admin key sees every project's batches.
    expect((await getResults(besh.baseURL, id, {}, { key: ADMIN_KEY })).status).toBe(200);
    const missingId = `batch_${randomBytes(12).toString('hex')}`;
    for (const q of [{}, { custom_id: 'ten-1' }, { after: (await getResults(besh.baseURL, id, {}, { key: alphaKey })).cursor! }]) {
      const hidden = await getResults(besh.baseURL, id, q, { key: betaKey });
      const missing = await getResults(besh.baseURL, missingId, q, { key: betaKey });
      expect(hidden.status).toBe(404);
      expect(hidden.body.error.code).toBe('batch_not_found');
      expect(hidden.body.error.message.replace(id, 'ID')).toBe(missing.body.error.message.replace(missingId, 'ID'));
      expect(hidden.cursor).toBeNull();
    }
    expect((await getResults(besh.baseURL, id, {}, {})).status).toBe(401);
  });
});
