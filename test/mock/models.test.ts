import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';

import { type MockServer, parseMockOptions, startMockServer } from '../../src/mock/index.js';
import { UpstreamPool } from '../../src/upstream/upstream-pool.js';

const toClose: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(toClose.splice(0).map((c) => c.close()));
});

async function mock(models?: string[]): Promise<{ mock: MockServer; client: OpenAI }> {
  const m = await startMockServer({ host: '127.0.0.1', port: 0, models });
  toClose.push(m);
  return { mock: m, client: new OpenAI({ baseURL: `${m.url}/v1`, apiKey: 'x', maxRetries: 0 }) };
}

const ask = (client: OpenAI, model: string) => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });

describe('which models the mock serves', () => {
  it('without --models: any model name, listed at /mock/models; GET /v1/models answers 404', async () => {
    const { mock: m, client } = await mock();
    expect((await ask(client, 'meta-llama/Llama-3.1-8B-Instruct')).model).toBe('meta-llama/Llama-3.1-8B-Instruct');
    expect((await ask(client, 'my-finetune')).model).toBe('my-finetune');
    await ask(client, 'my-finetune');

    const v1 = await fetch(`${m.url}/v1/models`);
    expect(v1.status).toBe(404);
    expect(((await v1.json()) as any).error.type).toBe('invalid_request_error');
    await expect(client.models.list()).rejects.toBeInstanceOf(OpenAI.NotFoundError);

    const listed = (await (await fetch(`${m.url}/mock/models`)).json()) as any;
    expect(listed.object).toBe('list');
    expect(listed.data.map((d: any) => d.id)).toEqual(['mock-model', 'meta-llama/Llama-3.1-8B-Instruct', 'my-finetune']);
    expect(listed.data[0]).toMatchObject({ object: 'model', owned_by: 'besh-mock' });
    expect(m.stats().total_requests).toBe(3); // listings are not counted
  });

  it('with --models: only those, listed at GET /v1/models; others get 404 model_not_found', async () => {
    const { mock: m, client } = await mock(['a', 'b']);
    expect((await ask(client, 'b')).model).toBe('b');
    const refused = await ask(client, 'c').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.NotFoundError);
    expect((refused as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
    expect((await client.models.list()).data.map((d) => d.id)).toEqual(['a', 'b']);
    expect(((await (await fetch(`${m.url}/mock/models`)).json()) as any).data.map((d: any) => d.id)).toEqual(['a', 'b']);
  });

  it('BESH checks no models against an any-model mock, and still checks a mock that lists its models', async () => {
    const { mock: any } = await mock();
    const { mock: fixed } = await mock(['model-a']);
    const pool = (url: string): UpstreamPool => {
      const p = new UpstreamPool({
        baseUrls: [`${url}/v1`],
        apiKey: null,
        maxWorkers: 4,
        requestTimeoutMs: 5000,
        maxResponseBytes: 1 << 20,
        healthIntervalMs: 0,
        ejectAfterFailures: 3,
        modelsRefreshMs: 0,
      });
      toClose.push(p);
      return p;
    };
    const blind = pool(any.url);
    await blind.refreshModels();
    expect(blind.models()).toBeNull();
    expect(blind.servesModel('a-model-the-mock-never-saw')).toBe(true);

    const checked = pool(fixed.url);
    await checked.refreshModels();
    expect([...checked.models()!]).toEqual(['model-a']);
    expect(checked.servesModel('model-b')).toBe(false);
  });

  it('options: no flag means any model; a list is kept; an empty list is a mistake', () => {
    expect(parseMockOptions({}).models).toEqual([]);
    expect(parseMockOptions({ models: 'a, b' }).models).toEqual(['a', 'b']);
    expect(() => parseMockOptions({ models: ' , ' })).toThrow('--models must name at least one model');
  });
});
