/**
 * What a new user does first: `make quick-start` (scripts/quick-start.sh, which starts the
 * simulated inference server when none answers), then the README's own example line. It must
 * complete exactly as printed.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';

import { readJsonl, upload, waitDone } from '../helpers/batches.js';
import { freePort, ROOT, tempDir } from '../helpers/besh-process.js';

const dir = tempDir('besh-readme-');
let env: Record<string, string> = {};

afterAll(() => {
  execFileSync(join(ROOT, 'scripts', 'stop.sh'), { env: { ...env, PATH: process.env.PATH ?? '' }, stdio: 'pipe' });
  dir.remove();
});

/** The one-line request of README.md's "Each line of the input file is one request" block. */
function readmeExampleLine(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const m = /Each line of the input file is one request[^\n]*\n+```json\n(.+)\n```/.exec(readme);
  if (!m) throw new Error('README.md has no example request line');
  return m[1]!;
}

describe('the README example against make quick-start', () => {
  it('completes as printed, with the simulated server quick-start starts', async () => {
    const [port, mockPort] = [await freePort(), await freePort()];
    env = { PORT: String(port), MOCK_PORT: String(mockPort), BESH_DATA_DIR: dir.path };
    const out = execFileSync(join(ROOT, 'scripts', 'quick-start.sh'), { env: { ...env, PATH: process.env.PATH ?? '', HOST: '127.0.0.1' }, encoding: 'utf8' });
    expect(out).toContain('starting the simulated one (besh mock)');
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
    const line = readmeExampleLine();
    expect(JSON.parse(line).body.model).toBe('my-model');
    const fileId = await upload(client, `${line}\n`, 'requests.jsonl');
    const batch = await client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitDone(client, batch.id, 30_000);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 1, completed: 1, failed: 0 });
    const [result] = await readJsonl(client, done.output_file_id);
    expect(result!.custom_id).toBe('request-1');
    expect(result!.response.status_code).toBe(200);
    expect(result!.response.body.model).toBe('my-model');
  });
});
