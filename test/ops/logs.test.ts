import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';

const SECRET = 'sk-secret-7f3a9c1e5b2d4f60';
const MARKER = 'BODY-MARKER-q8z7x6';

let mock: MockServer;
let besh: BeshProcess;
const dir = tempDir();

beforeAll(async () => {
  mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 50, fail500Rate: 0.3, seed: 7, maxFaultsPerRequest: 1 });
  besh = await startBesh(
    { OPENAI_API_BASE: `${mock.url}/v1`, OPENAI_API_KEY: SECRET, LOG_LEVEL: 'debug', BESH_RETRY_BASE_MS: '10', BESH_RETRY_MAX_MS: '20', BESH_SHUTDOWN_GRACE_MS: '300' },
    { dataDir: dir.path },
  );
});

afterAll(async () => {
  await besh?.stop();
  await mock?.close();
  dir.remove();
});

const logLines = (): Array<Record<string, any>> =>
  besh
    .output()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, any>);

describe('logs', () => {
  it('are JSON lines with one info line per batch status change, and never the API key or a request body', async () => {
    const c = besh.client;
    // Markers in the bodies: one fails with 400 (its error body goes to the error file), others retried on 500.
    const lines = chatLines(8, { marker: (i) => (i === 3 ? `${MARKER} MOCK_FAIL_400` : MARKER) });
    const done = await waitDone(c, (await c.batches.create({ input_file_id: await upload(c, lines), endpoint: '/v1/chat/completions', completion_window: '24h' })).id, 20_000);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toMatchObject({ completed: 7, failed: 1 });

    const hanging = await upload(c, chatLines(2, { marker: () => `${MARKER} MOCK_HANG` }), 'hang.jsonl');
    const b2 = await c.batches.create({ input_file_id: hanging, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(c, b2.id, (b) => b.status === 'in_progress');
    await c.batches.cancel(b2.id);
    expect((await waitDone(c, b2.id, 10_000)).status).toBe('cancelled');
    expect((await fetch(`${besh.baseURL}/batches/${b2.id}`, { method: 'DELETE' })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 200));

    const out = besh.output();
    expect(out).not.toContain(SECRET);
    expect(out).not.toContain(MARKER);
    expect(out).not.toContain('question 1'); // the text of a request body

    const logs = logLines(); // throws if any line is not JSON
    const statusLines = (id: string): string[] => logs.filter((l) => l.batchId === id && /^batch /.test(l.msg)).map((l) => l.msg as string);
    expect(statusLines(done.id)).toEqual(['batch validating', 'batch in_progress', 'batch finalizing', 'batch completed']);
    expect(statusLines(b2.id)).toEqual(['batch validating', 'batch in_progress', 'batch cancelling', 'batch cancelled', 'batch deleted']);
    for (const l of logs.filter((x) => /^batch /.test(x.msg))) expect(l.level).toBe(30); // info

    // HTTP lines carry the request id the client got back.
    const req = logs.find((l) => l.msg === 'request' && l.method === 'POST' && l.url === '/v1/batches');
    expect(req?.requestId).toMatch(/\S/);
  });
});
