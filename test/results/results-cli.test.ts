/**
 * `besh results` (the built binary) against a real `besh serve`: --follow prints every line of a
 * running batch exactly once and stops when it has ended; --after goes on from a printed cursor;
 * --custom-id prints one request's line; --kind picks a file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { runCli } from '../cli/run-cli.js';
import { chatLines, upload, waitDone } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { customIdOf, fileText, sorted, splitLines } from './results-helpers.js';

describe('besh results', () => {
  let mock: MockServer;
  let dir: { path: string; remove(): void };
  let besh: BeshProcess;

  beforeAll(async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 4 });
    dir = tempDir('besh-results-cli-');
    besh = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, MAX_WORKERS: '8', BESH_PROGRESS_FLUSH_MS: '100', LOG_LEVEL: 'warn' }, { dataDir: dir.path });
  });
  afterAll(async () => {
    await besh?.kill();
    await mock?.close();
    dir?.remove();
  });

  const cli = (...args: string[]) => runCli(['results', ...args, '--base-url', besh.baseURL]);
  const cursorOf = (stderr: string): string => /Cursor: (\S+)/.exec(stderr)?.[1] ?? '';

  it('--follow prints every line of the running batch once, in a file, and ends with the batch; --after, --kind and --custom-id', async () => {
    const N = 1200;
    const input = await upload(besh.client, chatLines(N, { prefix: 'cli', marker: (i) => (i % 9 === 0 ? 'MOCK_FAIL_400' : undefined) }), 'cli.jsonl');
    const b = await besh.client.batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const out = join(dir.path, 'followed.jsonl');
    const followed = await cli(b.id, '--follow', '--interval', '0.1', '--output', out);
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stdout).toBe('');
    // Progress on stderr (plain lines: stderr is not a terminal), then the summary.
    expect(followed.stderr).toMatch(new RegExp(`${b.id} in_progress`));
    expect(followed.stderr).toContain(`${N} lines; the batch has ended, these are all its results.`);

    const done = await waitDone(besh.client, b.id);
    expect(done.status).toBe('completed');
    const files = [...splitLines(await fileText(besh.baseURL, done.output_file_id)), ...splitLines(await fileText(besh.baseURL, done.error_file_id))];
    const got = splitLines(readFileSync(out, 'utf8'));
    expect(got).toHaveLength(N);
    expect(new Set(got.map(customIdOf)).size).toBe(N);
    expect(sorted(got)).toEqual(sorted(files));

    // The cursor it printed: nothing after it.
    const rest = await cli(b.id, '--after', cursorOf(followed.stderr));
    expect(rest.code, rest.stderr).toBe(0);
    expect(rest.stdout).toBe('');
    expect(rest.stderr).toMatch(/^0 lines; the batch has ended/);

    // Without --follow, on stdout; one kind only.
    const errors = await cli(b.id, '--kind', 'error');
    expect(errors.code, errors.stderr).toBe(0);
    expect(errors.stdout).toBe(await fileText(besh.baseURL, done.error_file_id));

    const one = await cli(b.id, '--custom-id', 'cli-10');
    expect(one.code, one.stderr).toBe(0);
    expect(files).toContain(one.stdout.trimEnd());
    expect(customIdOf(one.stdout)).toBe('cli-10');
    const none = await cli(b.id, '--custom-id', 'cli-x');
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^besh results: No result for custom_id 'cli-x'/);
    const bad = await cli(b.id, '--after', 'not a cursor');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^besh results: BESH answered HTTP 400: The cursor in 'after' is malformed/);
    const missing = await cli('batch_doesnotexist');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('No batch found with id batch_doesnotexist');
    expect((await cli(b.id, '--kind', 'both')).code).toBe(2);
  });
});
