/**
 * Hostile input corpus, part 3: inference servers that misbehave. Answers that are not JSON, are
 * enormous, never end or never come are capped and timed out into error-file lines with a clear
 * error; the batch finishes, its files hold only whole JSON lines, and the server keeps serving.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { upload, waitDone } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { expectServing } from '../helpers/raw-http.js';

const MAX_RESPONSE = 64 * 1024;
const TIMEOUT_MS = 600;

/** What the upstream did for one request, by custom id. */
interface Served {
  attempts: number;
  bytesWritten: number;
  /** The client (BESH) closed the connection before the answer was complete. */
  closedEarly: boolean;
}

const served = new Map<string, Served>();
/** Inference answers neither finished nor closed yet. */
const pending = new Set<ServerResponse>();
const sockets = new Set<Socket>();
const timers = new Set<NodeJS.Timeout>();

const completion = (id: string): string =>
  JSON.stringify({
    id: `chatcmpl-${id}`,
    object: 'chat.completion',
    created: 1,
    model: 'mock-model',
    choices: [{ index: 0, message: { role: 'assistant', content: `answer to ${id}` }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
  });

/** The misbehaviour is chosen by the custom id's prefix (BESH sends it as x-besh-custom-id). */
function misbehave(customId: string, req: IncomingMessage, res: ServerResponse): void {
  const s = served.get(customId) ?? { attempts: 0, bytesWritten: 0, closedEarly: false };
  s.attempts++;
  served.set(customId, s);
  const write = (chunk: string | Buffer): boolean => {
    s.bytesWritten += Buffer.byteLength(chunk);
    return res.write(chunk);
  };
  pending.add(res);
  res.on('close', () => {
    pending.delete(res);
    if (!res.writableFinished) s.closedEarly = true;
  });
  const kind = customId.replace(/-\d+$/, '');
  const send = (status: number, type: string, body: string): void => {
    s.bytesWritten += Buffer.byteLength(body);
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'x-request-id': `up-${customId}` });
    res.end(body);
  };
  switch (kind) {
    case 'ok':
      return send(200, 'application/json', completion(customId));
    case 'html':
      return send(200, 'text/html', '<html><body><h1>502 Bad Gateway</h1></body></html>');
    case 'plain-text':
      return send(200, 'text/plain', 'OK');
    case 'empty':
      return send(200, 'application/json', '');
    case 'json-array':
      return send(200, 'application/json', '[1,2,3]');
    case 'cut-json':
      return send(200, 'application/json', completion(customId).slice(0, 40));
    case 'big-junk':
      // Over 32 KB, shaped like an object but not JSON.
      return send(200, 'application/json', `{${'x'.repeat(40_000)}}`);
    case 'big-junk-usage':
      // The same, with a well-formed usage object at the end.
      return send(200, 'application/json', `{"data":[${'x'.repeat(40_000)}],"usage":{"prompt_tokens":1,"total_tokens":1}}`);
    case 'html-500':
      return send(500, 'text/html', '<html>Internal Server Error</html>');
    case 'enormous': {
      // Chunked and endless: only the client's cap stops it.
      res.writeHead(200, { 'content-type': 'application/json' });
      write('{"pad":"');
      const chunk = Buffer.alloc(16 * 1024, 'a');
      const pump = (): void => {
        while (!res.destroyed && write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
      return;
    }
    case 'enormous-declared':
      // Announces 200 MB and sends the first 100 KB at once.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 200 * 1024 * 1024 });
      write(Buffer.alloc(100 * 1024, ' '));
      return;
    case 'never-ends': {
      // Headers and a start, then a byte every 50 ms, forever: each byte would reset a per-read idle timer.
      res.writeHead(200, { 'content-type': 'application/json' });
      write('{"id":"');
      const t = setInterval(() => {
        if (res.destroyed) clearInterval(t);
        else write('z');
      }, 50);
      timers.add(t);
      return;
    }
    case 'headers-only':
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 100 });
      res.flushHeaders();
      return;
    case 'never-answers':
      return; // nothing, ever
    case 'reset':
      req.socket.destroy();
      return;
    default:
      return send(400, 'application/json', JSON.stringify({ error: { message: `unknown test kind ${kind}` } }));
  }
}

let upstream: Server;
let upstreamUrl: string;
let besh: BeshProcess;
let client: OpenAI;
let dir: { path: string; remove(): void };

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/health') {
      res.end();
      return;
    }
    if (path === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'mock-model', object: 'model', created: 1, owned_by: 'test' }] }));
      return;
    }
    req.resume();
    req.on('end', () => misbehave(String(req.headers['x-besh-custom-id'] ?? 'unknown'), req, res));
  });
  upstream.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as { port: number }).port}/v1`;
  dir = tempDir('besh-hostile-upstream-');
  besh = await startBesh(
    {
      OPENAI_API_BASE: upstreamUrl,
      BESH_MAX_RESPONSE_BYTES: String(MAX_RESPONSE),
      BESH_REQUEST_TIMEOUT_MS: String(TIMEOUT_MS),
      BESH_MAX_ATTEMPTS: '2',
      BESH_RETRY_BASE_MS: '20',
      BESH_RETRY_MAX_MS: '50',
      BESH_PROGRESS_FLUSH_MS: '100',
      BESH_SHUTDOWN_GRACE_MS: '300',
      LOG_LEVEL: 'warn',
    },
    { dataDir: dir.path },
  );
  client = besh.client;
});

afterAll(async () => {
  await besh?.kill();
  for (const t of timers) clearInterval(t);
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
  dir?.remove();
});

const requestLine = (customId: string): string =>
  JSON.stringify({ custom_id: customId, method: 'POST', url: '/v1/chat/completions', body: { model: 'mock-model', messages: [{ role: 'user', content: 'hi' }] } });

/** Raw lines of a result file, each checked to be one whole JSON object. */
async function resultLines(fileId: string | null | undefined): Promise<Array<Record<string, any>>> {
  if (!fileId) return [];
  const text = await (await client.files.content(fileId)).text();
  expect(text === '' || text.endsWith('\n')).toBe(true);
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      let o: unknown;
      expect(() => (o = JSON.parse(l)), `not JSON: ${l.slice(0, 120)}`).not.toThrow();
      expect(typeof o === 'object' && o !== null && !Array.isArray(o), l.slice(0, 120)).toBe(true);
      return o as Record<string, any>;
    });
}

type Batch = Awaited<ReturnType<OpenAI['batches']['retrieve']>>;

describe('a batch against a misbehaving inference server', () => {
  const KINDS = ['ok', 'html', 'plain-text', 'empty', 'json-array', 'cut-json', 'html-500', 'enormous', 'enormous-declared', 'never-ends', 'headers-only', 'never-answers', 'reset'];
  const ids = [...KINDS.map((k) => `${k}-1`), 'ok-2'];
  let batch: Batch;
  let elapsedMs: number;
  let out: Array<Record<string, any>>;
  let errs: Map<string, Record<string, any>>;

  beforeAll(async () => {
    const input = await upload(client, `${ids.map(requestLine).join('\n')}\n`, 'hostile-upstream.jsonl');
    const t0 = Date.now();
    const b = await client.batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' });
    batch = await waitDone(client, b.id, 30_000);
    elapsedMs = Date.now() - t0;
    out = await resultLines(batch.output_file_id);
    errs = new Map((await resultLines(batch.error_file_id)).map((l) => [l.custom_id as string, l]));
  });

  it('finishes, completed, with every line accounted for once and in bounded time', () => {
    expect(batch.status).toBe('completed');
    expect(batch.request_counts).toEqual({ total: ids.length, completed: 2, failed: ids.length - 2 });
    expect(out.map((l) => l.custom_id).sort()).toEqual(['ok-1', 'ok-2']);
    expect([...errs.keys()].sort()).toEqual(ids.filter((i) => !i.startsWith('ok-')).sort());
    // Two attempts of 600 ms at most for the hanging ones, in parallel: far from "never".
    expect(elapsedMs).toBeLessThan(10_000);
  });

  it.each([
    ['html', 'an HTML page with status 200'],
    ['plain-text', 'plain text with status 200'],
    ['empty', 'an empty 200 body'],
    ['json-array', 'JSON that is not an object'],
    ['cut-json', 'JSON cut in the middle'],
  ])('%s (%s) → invalid_upstream_response, not retried', (kind) => {
    const e = errs.get(`${kind}-1`)!;
    expect(e.response).toBeNull();
    expect(e.error).toEqual({ code: 'invalid_upstream_response', message: 'The inference server answered 2xx with a body that is not JSON.' });
    expect(served.get(`${kind}-1`)?.attempts).toBe(1);
  });

  it.each([
    ['enormous', 'an endless chunked body'],
    ['enormous-declared', 'a declared 200 MB body'],
  ])('%s (%s) → response_too_large, cut off at the cap, not retried', (kind) => {
    const e = errs.get(`${kind}-1`)!;
    expect(e.response).toBeNull();
    expect(e.error.code).toBe('response_too_large');
    expect(e.error.message).toContain(`${MAX_RESPONSE} bytes`);
    const s = served.get(`${kind}-1`)!;
    expect(s.attempts).toBe(1);
    expect(s.closedEarly).toBe(true);
    // BESH stopped reading soon after the cap (socket buffers allow some slack).
    expect(s.bytesWritten).toBeLessThan(8 * 1024 * 1024);
  });

  it.each([
    ['never-ends', 'a body trickling forever'],
    ['headers-only', 'headers and then nothing'],
    ['never-answers', 'no answer at all'],
  ])('%s (%s) → request_timeout after every attempt, connection closed', (kind) => {
    const e = errs.get(`${kind}-1`)!;
    expect(e.response).toBeNull();
    expect(e.error).toEqual({ code: 'request_timeout', message: `The inference server did not answer within ${TIMEOUT_MS} ms.` });
    const s = served.get(`${kind}-1`)!;
    expect(s.attempts).toBe(2);
    expect(s.closedEarly).toBe(true);
  });

  it('reset (connection destroyed) → connection_error after every attempt', () => {
    const e = errs.get('reset-1')!;
    expect(e.response).toBeNull();
    expect(e.error.code).toBe('connection_error');
    expect(e.error.message).toMatch(/Could not reach the inference server/);
    expect(served.get('reset-1')?.attempts).toBe(2);
  });

  it('html-500 → retried, then the server status and its non-JSON body as a JSON string', () => {
    const e = errs.get('html-500-1')!;
    expect(e.error).toBeNull();
    expect(e.response).toMatchObject({ status_code: 500, request_id: 'up-html-500-1', body: '<html>Internal Server Error</html>' });
    expect(served.get('html-500-1')?.attempts).toBe(2);
  });

  it('the good lines in between are whole and right', () => {
    for (const l of out) {
      expect(l.error).toBeNull();
      expect(l.response.status_code).toBe(200);
      expect(l.response.body.choices[0].message.content).toBe(`answer to ${l.custom_id}`);
    }
    expect(batch.usage).toMatchObject({ input_tokens: 6, output_tokens: 8, total_tokens: 14 });
  });

  it('no exchange with the upstream is left hanging: BESH closed every one it gave up on', async () => {
    // 'closedEarly' is set when the socket closes; give the last abort a moment to land.
    const deadline = Date.now() + 2000;
    while (pending.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(pending.size).toBe(0);
    await expectServing(besh);
  });
});

describe('a 2xx body over 32 KB that is shaped like an object but is not JSON', () => {
  it('goes to the error file as invalid_upstream_response, never into the output file', async () => {
    const input = await upload(client, `${['big-junk-1', 'ok-3'].map(requestLine).join('\n')}\n`, 'big-junk.jsonl');
    const b = await waitDone(client, (await client.batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' })).id, 20_000);
    expect(b.status).toBe('completed');
    const outLines = await resultLines(b.output_file_id);
    expect(outLines.map((l) => l.custom_id)).toEqual(['ok-3']);
    const errLines = await resultLines(b.error_file_id);
    expect(errLines).toHaveLength(1);
    expect(errLines[0]).toMatchObject({ custom_id: 'big-junk-1', response: null, error: { code: 'invalid_upstream_response' } });
  });
});

describe('a 2xx body over 32 KB that is not JSON but ends in a well-formed usage object', () => {
  // Large bodies were once checked by shape only and their last "usage" parsed on its own: such a
  // body went raw into the output file as a line that is not JSON.
  it('goes to the error file as invalid_upstream_response, never into the output file', async () => {
    const input = await upload(client, `${['big-junk-usage-1', 'ok-4'].map(requestLine).join('\n')}\n`, 'big-junk-usage.jsonl');
    const b = await waitDone(client, (await client.batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' })).id, 20_000);
    expect(b.status).toBe('completed');
    expect((await resultLines(b.output_file_id)).map((l) => l.custom_id)).toEqual(['ok-4']);
    expect((await resultLines(b.error_file_id))[0]).toMatchObject({ custom_id: 'big-junk-usage-1', response: null, error: { code: 'invalid_upstream_response' } });
  });
});

describe('after the misbehaving upstream', () => {
  it('the server still serves and a normal batch completes', async () => {
    await expectServing(besh);
    const input = await upload(client, `${['ok-10', 'ok-11', 'ok-12'].map(requestLine).join('\n')}\n`, 'after.jsonl');
    const b = await waitDone(client, (await client.batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' })).id, 20_000);
    expect(b.status).toBe('completed');
    expect(b.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    expect(b.error_file_id).toBeNull();
  });
});
