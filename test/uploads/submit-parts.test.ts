import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { countLines, runCli } from '../cli/run-cli.js';
import { chatLines } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';

let mock: MockServer;
/** Takes at most 20,000 bytes in one request (BESH_MAX_FILE_BYTES); more only in parts. */
let besh: BeshProcess;
let dir: { path: string; remove(): void };
let env: Record<string, string>;
const LIMIT = 20_000;

const file = (name: string, data: string | Buffer): string => {
  const p = join(dir.path, name);
  writeFileSync(p, data);
  return p;
};

beforeAll(async () => {
  mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 0 });
  dir = tempDir('besh-submit-parts-');
  besh = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, BESH_MAX_FILE_BYTES: String(LIMIT), LOG_LEVEL: 'info' }, { dataDir: dir.path });
  env = { BESH_BASE_URL: besh.baseURL };
});

afterAll(async () => {
  await besh?.stop();
  await mock?.close();
  dir?.remove();
});

/** Upload ids the server logged as completed (how the file reached it). */
const completedUploads = (): string[] => [...besh.output().matchAll(/"uploadId":"(upload_[0-9A-Za-z]+)"[^\n]*"msg":"upload completed"/g)].map((m) => m[1]!);

describe('besh submit with the Uploads API', () => {
  it('a file above --parts-above goes in parts (in order, a few at a time), and the batch completes', async () => {
    const text = chatLines(100, { prefix: 'sp' });
    expect(text.length).toBeGreaterThan(12_000);
    expect(text.length).toBeLessThan(LIMIT);
    const input = file('above.jsonl', text);
    const out = join(dir.path, 'above-out.jsonl');
    const before = completedUploads().length;
    const r = await runCli(['submit', input, '--parts-above', '10K', '--part-size', '2K', '--wait', '--output', out], env);
    expect(r.code, r.stderr).toBe(0);
    const parts = Math.ceil(text.length / 2048);
    expect(r.stderr).toContain(`Sent above.jsonl in ${parts} parts (larger than --parts-above 10 KiB) through upload_`);
    expect(r.stderr).toMatch(/completed in .*: 100 completed, 0 failed of 100/);
    expect(completedUploads()).toHaveLength(before + 1);
    const results = readFileSync(out, 'utf8');
    expect(countLines(results)).toBe(100);
    const batch = await besh.client.batches.retrieve(r.stdout.trim());
    expect(await (await besh.client.files.content(batch.input_file_id)).text()).toBe(text);
    expect(await besh.listBlobs('uploads/')).toEqual([]);
  });

  it('a file under --parts-above but over what the server takes in one request goes in parts too', async () => {
    const text = chatLines(200, { prefix: 'big' });
    expect(text.length).toBeGreaterThan(LIMIT);
    const input = file('over-limit.jsonl', text);
    const r = await runCli(['submit', input, '--wait'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Sent over-limit.jsonl in 1 part (larger than the 20 KiB the server takes in one request)');
    expect(r.stderr).toMatch(/200 completed, 0 failed of 200/);
  });

  it('a .jsonl.gz that is small but too large once decompressed: refused in one request, then sent in parts', async () => {
    const text = chatLines(300, { prefix: 'gz' });
    const gz = gzipSync(text);
    expect(gz.length).toBeLessThan(LIMIT);
    expect(text.length).toBeGreaterThan(LIMIT);
    const r = await runCli(['submit', file('packed.jsonl.gz', gz), '--wait'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('(too large for one request once decompressed)');
    expect(r.stderr).toMatch(/300 completed, 0 failed of 300/);
  });

  it('a bad line is reported with its number, and the upload is cancelled (no parts left)', async () => {
    const text = `${chatLines(60)}not json\n`;
    const r = await runCli(['submit', file('bad.jsonl', text), '--parts-above', '1K', '--part-size', '4K'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Line 61 is not valid JSON');
    expect(r.stdout).toBe('');
    expect(besh.output()).toMatch(/"msg":"upload cancelled"/);
    expect(await besh.listBlobs('uploads/')).toEqual([]);
  });

  it('refuses a --part-size over the server\'s part limit and a size it cannot read', async () => {
    const input = file('tiny.jsonl', chatLines(1));
    const big = await runCli(['submit', input, '--part-size', '65M'], env);
    expect(big.code).toBe(2);
    expect(big.stderr).toContain('the server takes parts of at most 64 MiB');
    const bad = await runCli(['submit', input, '--parts-above', 'lots'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("Invalid --parts-above 'lots'");
  });
});
