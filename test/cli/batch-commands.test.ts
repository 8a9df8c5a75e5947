import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, waitFor } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { countLines, runCli } from './run-cli.js';

let mock: MockServer;
let besh: BeshProcess;
let dir: { path: string; remove(): void };
let env: Record<string, string>;
/** The batch `submit --wait` ran: 5 requests, 2 of which the mock refuses with a 400. */
let doneId: string;
let doneBatch: any;

const file = (name: string, text: string | Buffer): string => {
  const p = join(dir.path, name);
  writeFileSync(p, text);
  return p;
};

beforeAll(async () => {
  mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 5 });
  dir = tempDir('besh-cli-');
  besh = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, BESH_SHUTDOWN_GRACE_MS: '300', LOG_LEVEL: 'warn' }, { dataDir: dir.path });
  env = { BESH_BASE_URL: besh.baseURL };
  const input = file('mixed.jsonl', chatLines(5, { marker: (i) => (i % 2 === 1 ? 'MOCK_FAIL_400' : undefined) }));
  const out = join(dir.path, 'results.jsonl');
  const errs = join(dir.path, 'errors.jsonl');
  const r = await runCli(['submit', input, '--metadata', 'team=qa', '--metadata', 'run=1', '--wait', '--output', out, '--errors', errs], env);
  expect(r.stderr).toContain('completed');
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/^batch_[0-9A-Za-z]+\n$/);
  doneId = r.stdout.trim();
  doneBatch = await besh.client.batches.retrieve(doneId);
});

afterAll(async () => {
  await besh?.stop();
  await mock?.close();
  dir?.remove();
});

describe('besh submit', () => {
  it('--wait --output --errors writes both files with the exact lines', () => {
    const out = readFileSync(join(dir.path, 'results.jsonl'), 'utf8');
    const errs = readFileSync(join(dir.path, 'errors.jsonl'), 'utf8');
    expect(countLines(out)).toBe(3);
    expect(countLines(errs)).toBe(2);
    expect(out.split('\n')[0]).toContain('"custom_id":"req-0"');
    expect(doneBatch.status).toBe('completed');
    expect(doneBatch.request_counts).toEqual({ total: 5, completed: 3, failed: 2 });
    expect(doneBatch.metadata).toEqual({ team: 'qa', run: '1' });
  });

  it('uploads a .jsonl.gz and prints only the batch id; --json prints the batch', async () => {
    const gz = file('small.jsonl.gz', gzipSync(chatLines(2, { prefix: 'gz' })));
    const r = await runCli(['submit', gz], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^batch_[0-9A-Za-z]+\n$/);
    expect(r.stderr).toMatch(/Uploaded small\.jsonl\.gz .* as file-/);
    const j = await runCli(['submit', gz, '--json', '--completion-window', '2h'], env);
    expect(j.code, j.stderr).toBe(0);
    const b = JSON.parse(j.stdout);
    expect(b.object).toBe('batch');
    expect(b.completion_window).toBe('2h');
    await waitFor(besh.client, b.id, (x) => x.status === 'completed');
  });

  it('--wait exits 3 and says why when the batch fails validation', async () => {
    const bad = file('bad.jsonl', chatLines(3, { url: '/v1/completions' }));
    const r = await runCli(['submit', bad, '--wait', '--output', join(dir.path, 'none.jsonl')], env);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/batch batch_\w+ ended failed: line 1: /);
    expect(readFileSync(join(dir.path, 'none.jsonl'), 'utf8')).toBe('');
  });

  it('shows the server error message for a bad request, and refuses bad flags with exit 2', async () => {
    const input = file('ok.jsonl', chatLines(1));
    const r = await runCli(['submit', input, '--completion-window', '99y'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^besh submit: BESH answered HTTP 400: .*'99y'.*\(param: completion_window\)$/m);
    const m = await runCli(['submit', input, '--metadata', 'novalue'], env);
    expect(m.code).toBe(2);
    expect(m.stderr).toContain("Invalid --metadata 'novalue'");
    const o = await runCli(['submit', input, '--output', 'x.jsonl'], env);
    expect(o.code).toBe(2);
    expect(o.stderr).toContain('--output and --errors need --wait');
    const missing = await runCli(['submit', join(dir.path, 'missing.jsonl')], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('Cannot read');
  });
});

describe('besh status / check', () => {
  it('shows status, counts, usage, timestamps and a preview of the output and errors', async () => {
    const r = await runCli(['status', doneId], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/status\s+completed/);
    expect(r.stdout).toContain('3 completed, 2 failed, 5 total');
    expect(r.stdout).toMatch(/usage\s+\d+ input .* = \d+ tokens/);
    expect(r.stdout).toMatch(/completed\s+\d{4}-\d\d-\d\d /);
    expect(r.stdout).toContain('metadata     team=qa, run=1');
    expect(r.stdout).toMatch(/Output preview \(first 3 lines of file-/);
    expect(r.stdout).toMatch(/req-0\s+".+"/);
    expect(r.stdout).toMatch(/Error file preview \(first 2 lines of file-/);
    expect(r.stdout).toMatch(/req-1\s+HTTP 400: /);
    expect(r.stderr).toBe('');
  });

  it('check is an alias, --lines limits the preview, --json prints the raw batch', async () => {
    const one = await runCli(['check', doneId, '--lines', '1'], env);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/first 1 line of/);
    const none = await runCli(['check', doneId, '--lines', '0'], env);
    expect(none.stdout).not.toContain('preview');
    const j = await runCli(['status', doneId, '--json'], env);
    expect(JSON.parse(j.stdout)).toMatchObject({ id: doneId, status: 'completed', request_counts: { total: 5 } });
  });

  it('shows validation errors with their line numbers', async () => {
    const bad = file('dup.jsonl', chatLines(2) + chatLines(1));
    const id = (await runCli(['submit', bad], env)).stdout.trim();
    await waitFor(besh.client, id, (b) => b.status === 'failed');
    const r = await runCli(['status', id], env);
    expect(r.stdout).toMatch(/status\s+failed/);
    expect(r.stdout).toMatch(/Errors \(\d+\):\n {2}line 3: \[\w+\] /);
  });
});

describe('besh list, cancel and files', () => {
  it('lists batches as a table, filters by status, and prints JSON', async () => {
    const r = await runCli(['list', '--limit', '0'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^ID\s+STATUS\s+DONE\s+FAILED\s+CREATED/);
    expect(r.stdout).toMatch(new RegExp(`${doneId}\\s+completed\\s+5/5\\s+2`));
    const failed = await runCli(['list', '--status', 'failed', '--json'], env);
    const rows = JSON.parse(failed.stdout);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((b: any) => b.status === 'failed')).toBe(true);
    const one = await runCli(['list', '--limit', '1', '--json'], env);
    expect(JSON.parse(one.stdout)).toHaveLength(1);
    const bad = await runCli(['list', '--status', 'done'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("Invalid --status 'done'");
  });

  it('cancels a running batch', async () => {
    const hang = file('hang.jsonl', chatLines(3, { marker: () => 'MOCK_HANG' }));
    const id = (await runCli(['submit', hang], env)).stdout.trim();
    await waitFor(besh.client, id, (b) => b.status === 'in_progress');
    const r = await runCli(['cancel', id], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${id} (cancelling|cancelled) `));
    await waitFor(besh.client, id, (b) => b.status === 'cancelled');
  });

  it('files list, download (streamed to -o) and delete', async () => {
    const list = await runCli(['files', 'list', '--purpose', 'batch_output', '--json'], env);
    expect(list.code, list.stderr).toBe(0);
    const outputs = JSON.parse(list.stdout);
    expect(outputs.map((f: any) => f.id)).toContain(doneBatch.output_file_id);
    const table = await runCli(['files', 'list'], env);
    expect(table.stdout).toMatch(/^ID\s+PURPOSE\s+SIZE\s+CREATED\s+FILENAME/);
    expect(table.stdout).toContain('mixed.jsonl');

    const dest = join(dir.path, 'copy.jsonl');
    const dl = await runCli(['files', 'download', doneBatch.output_file_id, '-o', dest], env);
    expect(dl.code, dl.stderr).toBe(0);
    expect(dl.stdout).toMatch(/^Wrote .* to /);
    expect(readFileSync(dest, 'utf8')).toBe(readFileSync(join(dir.path, 'results.jsonl'), 'utf8'));
    const toStdout = await runCli(['files', 'download', doneBatch.output_file_id, '-o', '-'], env);
    expect(countLines(toStdout.stdout)).toBe(3);
    const byName = await runCli(['files', 'download', doneBatch.input_file_id], env, { cwd: dir.path });
    expect(byName.code, byName.stderr).toBe(0);
    expect(readFileSync(join(dir.path, 'mixed.jsonl'), 'utf8')).toBe(chatLines(5, { marker: (i) => (i % 2 === 1 ? 'MOCK_FAIL_400' : undefined) }));

    const input = file('to-delete.jsonl', chatLines(1));
    const up = await besh.client.files.create({ file: new File([readFileSync(input)], 'to-delete.jsonl'), purpose: 'batch' });
    const del = await runCli(['files', 'delete', up.id], env);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toBe(`Deleted ${up.id}\n`);
    const again = await runCli(['files', 'delete', up.id], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`besh files delete: No file found with id ${up.id}\n`);
  });
});
