import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';

describe('model-aware routing through BESH', () => {
  const dir = tempDir();
  const dir2 = tempDir();
  let a: MockServer;
  let b: MockServer;
  let besh: BeshProcess;
  let blind: BeshProcess;

  beforeAll(async () => {
    a = await startMockServer({ port: 0, models: ['model-a'] });
    b = await startMockServer({ port: 0, models: ['model-b'] });
    besh = await startBesh({ OPENAI_API_BASE: `${a.url}/v1,${b.url}/v1`, LOG_LEVEL: 'warn' }, { dataDir: dir.path });
    // No upstream answers: models are unknown, batches are not checked against them.
    blind = await startBesh({ OPENAI_API_BASE: 'http://127.0.0.1:9/v1', LOG_LEVEL: 'warn', BESH_MAX_ATTEMPTS: '1' }, { dataDir: dir2.path });
  }, 30_000);

  afterAll(async () => {
    await besh?.stop();
    await blind?.stop();
    await a?.close();
    await b?.close();
    dir.remove();
    dir2.remove();
  });

  it('sends each request only to an upstream serving its model', async () => {
    const lines = chatLines(20, { model: 'model-a', prefix: 'a' }) + chatLines(20, { model: 'model-b', prefix: 'b' });
    const batch = await besh.client.batches.create({ input_file_id: await upload(besh.client, lines), endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitDone(besh.client, batch.id);
    expect(done.request_counts).toEqual({ total: 40, completed: 40, failed: 0 });
    expect(Object.keys(a.stats().received).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `a-${i}`).sort());
    expect(Object.keys(b.stats().received).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `b-${i}`).sort());
    const health = (await (await fetch(`${besh.url}/health`)).json()) as { upstreams: Array<{ url: string; healthy: boolean; models: string[] }> };
    expect(health.upstreams.map((u) => [u.url, u.healthy, u.models])).toEqual([
      [`${a.url}/v1`, true, ['model-a']],
      [`${b.url}/v1`, true, ['model-b']],
    ]);
  });

  it('fails a batch naming a model no upstream serves with model_not_found (param body.model, the line)', async () => {
    const lines = chatLines(2, { model: 'model-a', prefix: 'ok' }) + chatLines(1, { model: 'nobody-serves-me', prefix: 'bad' });
    const batch = await besh.client.batches.create({ input_file_id: await upload(besh.client, lines), endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitDone(besh.client, batch.id);
    expect(done.status).toBe('failed');
    expect(done.errors?.data).toEqual([
      { code: 'model_not_found', message: expect.stringContaining('nobody-serves-me') as string, param: 'body.model', line: 3 },
    ]);
  });

  it('does not check models when no upstream answered GET /v1/models', async () => {
    const batch = await blind.client.batches.create({
      input_file_id: await upload(blind.client, chatLines(2, { model: 'anything' })),
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    const done = await waitFor(blind.client, batch.id, (x) => x.status === 'completed' || x.status === 'failed');
    expect(done.status).toBe('completed'); // each request failed on the connection, not the batch on its model
    expect(done.errors?.data ?? []).toEqual([]);
    expect(done.request_counts).toMatchObject({ total: 2, failed: 2 });
  });
});
