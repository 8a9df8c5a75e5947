/**
 * `response.request_id` in output and error lines is always a string, as in OpenAI's files: the
 * upstream's `x-request-id`, else its body's `id`, else BESH's own id for the line.
 */
import { createServer, type Server } from 'node:http';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readJsonl, upload, waitDone } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';

let server: Server;
let besh: BeshProcess;
const dir = tempDir('besh-request-id-');

/** The answer depends on the custom id's prefix (BESH sends it as x-besh-custom-id). */
function upstream(): Promise<string> {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const customId = String(req.headers['x-besh-custom-id'] ?? '');
      const kind = customId.replace(/-\d+$/, '');
      const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
      const body = (o: object): string => JSON.stringify({ object: 'chat.completion', created: 1, model: 'm', choices: [], usage, ...o });
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (kind === 'header') headers['x-request-id'] = `up-${customId}`;
      if (kind === 'error') {
        res.writeHead(400, headers).end('{"error":{"message":"no","type":"invalid_request_error","param":null,"code":null}}');
        return;
      }
      res.writeHead(200, headers).end(kind === 'noid' ? body({}) : body({ id: `chatcmpl-${customId}` }));
    });
  });
  return new Promise((res) => server.listen(0, '127.0.0.1', () => res(`http://127.0.0.1:${(server.address() as { port: number }).port}/v1`)));
}

beforeAll(async () => {
  besh = await startBesh({ OPENAI_API_BASE: await upstream(), BESH_MAX_ATTEMPTS: '1', LOG_LEVEL: 'warn' }, { dataDir: dir.path });
});

afterAll(async () => {
  await besh?.stop();
  await new Promise((r) => server?.close(r));
  dir.remove();
});

describe('response.request_id', () => {
  it('is the upstream x-request-id, else the body id, else the line id — never null', async () => {
    const line = (customId: string): string =>
      JSON.stringify({ custom_id: customId, method: 'POST', url: '/v1/chat/completions', body: { model: 'm', messages: [{ role: 'user', content: 'hi' }] } });
    const input = ['header-1', 'body-1', 'noid-1', 'error-1'].map(line).join('\n') + '\n';
    const b = await besh.client.batches.create({ input_file_id: await upload(besh.client, input), endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitDone(besh.client, b.id, 30_000);
    expect(done.request_counts).toEqual({ total: 4, completed: 3, failed: 1 });
    const lines = [...(await readJsonl(besh.client, done.output_file_id)), ...(await readJsonl(besh.client, done.error_file_id))];
    const byId = new Map(lines.map((l) => [l.custom_id as string, l]));
    expect(byId.get('header-1')!.response.request_id).toBe('up-header-1');
    expect(byId.get('body-1')!.response.request_id).toBe('chatcmpl-body-1');
    const noid = byId.get('noid-1')!;
    expect(noid.response.request_id).toBe(noid.id);
    expect(noid.id).toMatch(/^batch_req_/);
    const error = byId.get('error-1')!;
    expect(error.response.status_code).toBe(400);
    expect(error.response.request_id).toBe(error.id);
  });
});

describe('x-request-id of the HTTP answer', () => {
  it("keeps a load balancer's well-formed X-Request-Id, replaces anything else with BESH's own", async () => {
    const kept = await fetch(`${besh.baseURL}/files`, { headers: { 'x-request-id': 'nginx-0123456789abcdef' } });
    expect(kept.headers.get('x-request-id')).toBe('nginx-0123456789abcdef');
    for (const bad of ['short', 'has spaces in it ok', `x${'y'.repeat(200)}`, '<script>alert(1)</script>']) {
      const r = await fetch(`${besh.baseURL}/files`, { headers: { 'x-request-id': bad } });
      expect(r.headers.get('x-request-id')).toMatch(/^req_[0-9A-Za-z]+$/);
    }
    const none = await fetch(`${besh.baseURL}/files`);
    expect(none.headers.get('x-request-id')).toMatch(/^req_[0-9A-Za-z]+$/);
  });
});
