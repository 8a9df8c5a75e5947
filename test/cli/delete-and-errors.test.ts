import { createServer, type Server } from 'node:http';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, freePort, startBesh, tempDir } from '../helpers/besh-process.js';
import { runCli } from './run-cli.js';

let mock: MockServer;
let besh: BeshProcess;
let dir: { path: string; remove(): void };
let env: Record<string, string>;

beforeAll(async () => {
  mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 1 });
  dir = tempDir('besh-cli-del-');
  besh = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, BESH_SHUTDOWN_GRACE_MS: '300', LOG_LEVEL: 'warn' }, { dataDir: dir.path });
  env = { BESH_BASE_URL: besh.baseURL };
});

afterAll(async () => {
  await besh?.stop();
  await mock?.close();
  dir?.remove();
});

const ids = async (): Promise<{ batches: string[]; files: string[] }> => ({
  batches: (await besh.client.batches.list({ limit: 100 })).data.map((b) => b.id),
  files: (await besh.client.files.list()).data.map((f) => f.id),
});

describe('besh delete', () => {
  it('refuses without --yes when stdin is not a terminal, and needs --batches or --files', async () => {
    const input = await upload(besh.client, chatLines(2, { prefix: 'refuse' }));
    const b = await besh.client.batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitDone(besh.client, b.id);
    const r = await runCli(['delete', '--batches', '--files'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Refusing to delete 1 batch and \d+ files? .*without confirmation: stdin is not a terminal.*--yes/);
    expect((await ids()).batches).toContain(b.id);
    const none = await runCli(['delete'], env);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Say what to delete: --batches, --files, or both.');
    const dry = await runCli(['delete', '--batches', '--dry-run'], env);
    expect(dry.code).toBe(0);
    expect(dry.stderr).toContain(b.id);
    expect((await ids()).batches).toContain(b.id);
  });

  it('--older-than keeps recent batches; --batches --yes deletes finished ones with their output files', async () => {
    const input = await upload(besh.client, chatLines(3, { prefix: 'old' }));
    const done = await besh.client.batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const finished = await waitDone(besh.client, done.id);
    const hangInput = await upload(besh.client, chatLines(2, { prefix: 'hang', marker: () => 'MOCK_HANG' }));
    const running = await besh.client.batches.create({ input_file_id: hangInput, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(besh.client, running.id, (x) => x.status === 'in_progress');

    const recent = await runCli(['delete', '--batches', '--older-than', '7d', '--yes'], env);
    expect(recent.code, recent.stderr).toBe(0);
    expect(recent.stdout).toBe('Nothing to delete.\n');
    expect((await ids()).batches).toContain(done.id);

    // created_at has 1 s resolution: 2 s later everything so far is older than 1s.
    await new Promise((r) => setTimeout(r, 2100));
    const r = await runCli(['delete', '--batches', '--older-than', '1s', '--yes'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Deleted batch ${done.id} (completed, created `);
    expect(r.stdout).toMatch(/^Deleted 2 batches and 0 files\.$/m);
    expect(r.stderr).toContain('Leaving 1 unfinished batch alone');
    const after = await ids();
    expect(after.batches).toEqual([running.id]);
    expect(after.files).not.toContain(finished.output_file_id);
    expect(after.files).toContain(input);

    // Files: the input of the running batch answers 409 and is skipped, not fatal.
    const f = await runCli(['delete', '--files', '--yes', '--json'], env);
    expect(f.code, f.stderr).toBe(0);
    const out = JSON.parse(f.stdout);
    expect(out.deleted.map((d: any) => d.id)).toContain(input);
    expect(out.skipped).toEqual([{ id: hangInput, reason: expect.stringContaining('409') }]);
    expect(out.failed).toEqual([]);

    // An unfinished batch goes only when --status names its status.
    const s = await runCli(['delete', '--batches', '--status', 'in_progress', '--yes'], env);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toContain(`Deleted batch ${running.id} (in_progress`);
    expect((await ids()).batches).toEqual([]);
  });
});

describe('errors', () => {
  it('says the server is unreachable, with the URL and the reason', async () => {
    const port = await freePort();
    const r = await runCli(['list', '--base-url', `http://127.0.0.1:${port}/v1`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`besh list: Cannot reach BESH at http://127.0.0.1:${port}/v1: connection refused\n`);
    // OPENAI_BASE_URL is the fallback of BESH_BASE_URL; a URL without a path gets /v1.
    const viaEnv = await runCli(['status', 'batch_x'], { OPENAI_BASE_URL: `http://127.0.0.1:${port}` });
    expect(viaEnv.stderr).toContain(`Cannot reach BESH at http://127.0.0.1:${port}/v1: connection refused`);
  });

  it('404: no batch / no file with that id', async () => {
    const r = await runCli(['status', 'batch_doesnotexist'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('besh status: No batch found with id batch_doesnotexist\n');
    const c = await runCli(['cancel', 'batch_nope', '--base-url', besh.baseURL]);
    expect(c.stderr).toBe('besh cancel: No batch found with id batch_nope\n');
    const f = await runCli(['files', 'download', 'file-nope', '-o', join(dir.path, 'x')], env);
    expect(f.code).toBe(1);
    expect(f.stderr).toBe('besh files download: No file found with id file-nope\n');
    const wrong = await runCli(['list', '--base-url', `${besh.url}/v2`]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/does not serve GET \/v2\/batches .*Is --base-url right\?/);
  });

  it('401: says authentication failed, and sends the key as a bearer token', async () => {
    let auth: string | undefined;
    const server: Server = createServer((req, res) => {
      auth = req.headers.authorization;
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const r = await runCli(['list'], { BESH_BASE_URL: `http://127.0.0.1:${port}/v1`, OPENAI_API_KEY: 'sk-wrong' });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('besh list: Authentication failed (HTTP 401): Incorrect API key provided. Set --api-key or OPENAI_API_KEY.\n');
      expect(auth).toBe('Bearer sk-wrong');
      await runCli(['list', '--api-key', 'sk-flag'], { BESH_BASE_URL: `http://127.0.0.1:${port}/v1`, OPENAI_API_KEY: 'sk-wrong' });
      expect(auth).toBe('Bearer sk-flag');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe('--help', () => {
  const commands = [['submit'], ['status'], ['check'], ['list'], ['cancel'], ['delete'], ['files'], ['files', 'list'], ['files', 'download'], ['files', 'delete']];
  it('every command explains itself and exits 0', async () => {
    const results = await Promise.all(commands.map((c) => runCli([...c, '--help'])));
    results.forEach((r, i) => {
      const name = commands[i]!.join(' ');
      expect(r.code, name).toBe(0);
      expect(r.stdout, name).toMatch(/^Usage: besh /);
      if (name !== 'files') expect(r.stdout, name).toContain('--base-url <url>');
    });
    expect(results[0]!.stdout).toContain('--wait');
    expect(results[5]!.stdout).toContain('--older-than <age>');
  });
});
