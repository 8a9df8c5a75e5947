import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { defaultMockOptions, parseMockOptions } from '../src/mock/mock-options.js';
import { type MockServer, startMockServer } from '../src/mock/mock-server.js';

const MODEL = 'mock-model';

const clientFor = (mock: MockServer): OpenAI => new OpenAI({ baseURL: `${mock.url}/v1`, apiKey: 'x', maxRetries: 0 });

const postJson = (mock: MockServer, path: string, body: unknown, init: RequestInit = {}): Promise<Response> =>
  fetch(`${mock.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });

const chatBody = (content: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  model: MODEL,
  messages: [{ role: 'user', content }],
  ...extra,
});

const chatParams = (content: string, model = MODEL): OpenAI.Chat.ChatCompletionCreateParamsNonStreaming => ({
  model,
  messages: [{ role: 'user', content }],
});

async function until(cond: () => boolean, timeoutMs = 1000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('mock server: routes and shapes', () => {
  let mock: MockServer;
  let client: OpenAI;
  beforeAll(async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0, models: [MODEL, 'other-model'] });
    client = clientFor(mock);
  });
  afterAll(() => mock.close());

  it('answers chat completions shaped like vLLM, deterministically', async () => {
    const params = { model: MODEL, messages: [{ role: 'user' as const, content: 'Tell me about batching please' }], max_tokens: 200 };
    const { data: a, response } = await client.chat.completions.create(params).withResponse();
    const b = await client.chat.completions.create(params);

    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.get('x-request-id')).toBeTruthy();
    expect(a.id).toMatch(/^chatcmpl-/);
    expect(a.object).toBe('chat.completion');
    expect(a.model).toBe(MODEL);
    expect(a.choices).toHaveLength(1);
    const choice = a.choices[0]!;
    expect(choice.index).toBe(0);
    expect(choice.message.role).toBe('assistant');
    expect(choice.message.tool_calls).toEqual([]);
    expect(choice.logprobs).toBeNull();
    expect(['stop', 'length']).toContain(choice.finish_reason);
    expect(choice.message.content).toBe(b.choices[0]!.message.content);
    expect(a.id).not.toBe(b.id);

    const usage = a.usage!;
    expect(usage.prompt_tokens).toBe(Math.ceil('Tell me about batching please'.length / 4) + 4);
    expect(usage.completion_tokens).toBeGreaterThan(0);
    expect(usage.completion_tokens).toBeLessThanOrEqual(200);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
    expect(choice.message.content!.split(' ')).toHaveLength(usage.completion_tokens);
    if (usage.completion_tokens >= 4) expect(choice.message.content).toMatch(/^mock reply to Tell/);
  });

  it('respects max_tokens and n', async () => {
    const res = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, n: 3 });
    expect(res.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    let total = 0;
    for (const c of res.choices) {
      const words = c.message.content!.split(' ').length;
      expect(words).toBeGreaterThanOrEqual(1);
      expect(words).toBeLessThanOrEqual(3);
      expect(c.finish_reason).toBe(words === 3 ? 'length' : 'stop');
      total += words;
    }
    expect(res.usage!.completion_tokens).toBe(total);
  });

  it('answers text completions for a string or an array of prompts', async () => {
    const one = await client.completions.create({ model: MODEL, prompt: 'Once upon a time' });
    expect(one.object).toBe('text_completion');
    expect(one.choices).toHaveLength(1);
    expect(one.choices[0]!.text.length).toBeGreaterThan(0);
    expect(one.choices[0]!.logprobs).toBeNull();
    expect(one.usage!.prompt_tokens).toBe(4);
    expect(one.usage!.completion_tokens).toBeGreaterThan(0);

    const many = await client.completions.create({ model: MODEL, prompt: ['a b c', 'd e f'], max_tokens: 8 });
    expect(many.choices.map((c) => c.index)).toEqual([0, 1]);
    const again = await client.completions.create({ model: MODEL, prompt: ['a b c', 'd e f'], max_tokens: 8 });
    expect(again.choices.map((c) => c.text)).toEqual(many.choices.map((c) => c.text));
  });

  it('answers embeddings as unit vectors, deterministic per input', async () => {
    const res = await client.embeddings.create({ model: MODEL, input: ['alpha', 'beta', 'alpha'] }); // SDK asks for base64
    expect(res.object).toBe('list');
    expect(res.model).toBe(MODEL);
    expect(res.data.map((d) => d.index)).toEqual([0, 1, 2]);
    for (const d of res.data) {
      expect(d.object).toBe('embedding');
      expect(d.embedding).toHaveLength(defaultMockOptions.embeddingDims);
      expect(Math.hypot(...d.embedding)).toBeCloseTo(1, 5);
    }
    expect(res.data[0]!.embedding).toEqual(res.data[2]!.embedding);
    expect(res.data[0]!.embedding).not.toEqual(res.data[1]!.embedding);
    expect(res.usage.prompt_tokens).toBeGreaterThan(0);
    expect(res.usage.total_tokens).toBe(res.usage.prompt_tokens);

    const floats = await client.embeddings.create({ model: MODEL, input: 'alpha', encoding_format: 'float' });
    expect(floats.data[0]!.embedding).toEqual(res.data[0]!.embedding);
    const ids = await client.embeddings.create({ model: MODEL, input: [1, 2, 3], encoding_format: 'float' });
    expect(ids.usage.prompt_tokens).toBe(3);
  });

  it('lists models and answers /health', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL, 'other-model']);
    expect(models.data[0]).toMatchObject({ object: 'model', owned_by: 'besh-mock' });
    const health = await fetch(`${mock.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe('');
  });

  it('answers errors with the OpenAI envelope', async () => {
    const failed = await client.chat.completions.create(chatParams('please MOCK_FAIL_400')).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(OpenAI.BadRequestError);

    const unknownModel = await client.chat.completions.create(chatParams('x', 'gpt-9')).catch((e: unknown) => e);
    expect(unknownModel).toBeInstanceOf(OpenAI.NotFoundError);
    expect((unknownModel as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');

    const notFound = await fetch(`${mock.url}/v1/nothing`);
    expect(notFound.status).toBe(404);
    expect(await notFound.json()).toEqual({ error: { message: expect.any(String) as string, type: 'invalid_request_error', param: null, code: null } });

    const badJson = await postJson(mock, '/v1/chat/completions', '{"model":');
    expect(badJson.status).toBe(400);
    expect(((await badJson.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');

    const noModel = await postJson(mock, '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }] });
    expect(noModel.status).toBe(400);
  });

  it('counts requests and resets the stats', async () => {
    mock.reset();
    await postJson(mock, '/v1/chat/completions', chatBody('count me'), { headers: { 'content-type': 'application/json', 'x-besh-custom-id': 'k1' } });
    await postJson(mock, '/v1/chat/completions', chatBody('MOCK_FAIL_400'));
    const stats = (await (await fetch(`${mock.url}/mock/stats`)).json()) as ReturnType<MockServer['stats']>;
    expect(stats.total_requests).toBe(2);
    expect(stats.responses_by_status).toEqual({ 200: 1, 400: 1 });
    expect(stats.received.k1).toBe(1);
    expect(Object.keys(stats.received)).toHaveLength(2); // the other one keyed by the body's sha1

    const reset = await fetch(`${mock.url}/mock/reset`, { method: 'POST' });
    expect(reset.status).toBe(200);
    expect(mock.stats()).toMatchObject({ total_requests: 0, responses_by_status: {}, received: {}, max_in_flight: 0 });
  });
});

describe('mock server: faults', () => {
  it('answers 429 with Retry-After', async () => {
    const mock = await startMockServer({ host: '127.0.0.1', port: 0, fail429Rate: 1, retryAfterSeconds: 3 });
    try {
      const err = await clientFor(mock)
        .chat.completions.create(chatParams('rate me'))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('3');
      expect(mock.stats().faults[429]).toBe(1);
    } finally {
      await mock.close();
    }
  });

  it('bounds injected faults per request key', async () => {
    const mock = await startMockServer({ host: '127.0.0.1', port: 0, fail500Rate: 1, maxFaultsPerRequest: 2 });
    try {
      const client = clientFor(mock);
      const attempt = () =>
        client.chat.completions.create(chatParams('retry me'), { headers: { 'x-besh-custom-id': 'req-1' } }).then(
          () => 200,
          (e: unknown) => (e instanceof OpenAI.APIError ? (e.status as number) : -1),
        );
      expect(await attempt()).toBe(500);
      expect(await attempt()).toBe(500);
      expect(await attempt()).toBe(200);
      const stats = mock.stats();
      expect(stats.received['req-1']).toBe(3);
      expect(stats.faults[500]).toBe(2);
      expect(stats.responses_by_status).toEqual({ 200: 1, 500: 2 });

      mock.reset(); // forgets the per-key fault counts too
      expect(await attempt()).toBe(500);
    } finally {
      await mock.close();
    }
  });

  it('drops the connection without answering', async () => {
    const mock = await startMockServer({ host: '127.0.0.1', port: 0, dropRate: 1 });
    try {
      await expect(postJson(mock, '/v1/chat/completions', chatBody('drop me'))).rejects.toThrow();
      expect(mock.stats().faults.drop).toBe(1);
      expect(mock.stats().responses_by_status).toEqual({});
    } finally {
      await mock.close();
    }
  });
});

describe('mock server: capacity, hangs and aborts', () => {
  it('processes at most `capacity` requests at once, FIFO', async () => {
    const mock = await startMockServer({ host: '127.0.0.1', port: 0, capacity: 2, latencyMs: 100 });
    try {
      const client = clientFor(mock);
      const started = performance.now();
      await Promise.all(Array.from({ length: 6 }, (_, i) => client.chat.completions.create(chatParams(`parallel ${i}`))));
      expect(performance.now() - started).toBeGreaterThanOrEqual(295);
      const stats = mock.stats();
      expect(stats.max_in_flight).toBe(2);
      expect(stats.max_queued).toBe(4);
      expect(stats.in_flight).toBe(0);
      expect(stats.queued).toBe(0);
    } finally {
      await mock.close();
    }
  });

  it('gives back the place or slot of a client that leaves', async () => {
    const mock = await startMockServer({ host: '127.0.0.1', port: 0, capacity: 1, latencyMs: 150 });
    try {
      const sleeping = new AbortController();
      const queued = new AbortController();
      const a = postJson(mock, '/v1/chat/completions', chatBody('a'), { signal: sleeping.signal });
      await until(() => mock.stats().in_flight === 1);
      const b = postJson(mock, '/v1/chat/completions', chatBody('b'), { signal: queued.signal });
      await until(() => mock.stats().queued === 1);

      queued.abort();
      await expect(b).rejects.toThrow();
      await until(() => mock.stats().queued === 0);
      sleeping.abort();
      await expect(a).rejects.toThrow();
      await until(() => mock.stats().in_flight === 0);

      const started = performance.now();
      const ok = await postJson(mock, '/v1/chat/completions', chatBody('c'));
      expect(ok.status).toBe(200);
      expect(performance.now() - started).toBeLessThan(400); // the slot was free, nobody ahead
      expect(mock.stats().responses_by_status).toEqual({ 200: 1 });
    } finally {
      await mock.close();
    }
  });

  it('never answers a hang marker, holds no slot, and close() still returns', async () => {
    const mock = await startMockServer({ host: '127.0.0.1', port: 0, capacity: 1 });
    const aborted = new AbortController();
    const hung = postJson(mock, '/v1/chat/completions', chatBody('MOCK_HANG'), { signal: aborted.signal });
    const hungForever = postJson(mock, '/v1/chat/completions', chatBody('MOCK_HANG too'));
    await until(() => Object.keys(mock.stats().received).length === 2);
    expect(mock.stats().in_flight).toBe(0);

    aborted.abort();
    await expect(hung).rejects.toThrow();
    const ok = await postJson(mock, '/v1/chat/completions', chatBody('after the hang'));
    expect(ok.status).toBe(200);

    await mock.close(); // must not wait for the hung request
    await expect(hungForever).rejects.toThrow();
  });
});

describe('parseMockOptions', () => {
  it('reads the CLI flags, with defaults for the rest', () => {
    expect(parseMockOptions({})).toEqual(defaultMockOptions);
    const o = parseMockOptions({
      port: '0',
      'latency-ms': '25',
      capacity: '8',
      models: 'a, b ,,c',
      'fail-500-rate': '0.5',
      'max-faults-per-request': '3',
      'retry-after': '2',
      seed: '7',
    });
    expect(o).toMatchObject({ port: 0, latencyMs: 25, capacity: 8, models: ['a', 'b', 'c'], fail500Rate: 0.5, maxFaultsPerRequest: 3, retryAfterSeconds: 2, seed: 7 });
    expect(parseMockOptions({ 'max-faults-per-request': 'Infinity' }).maxFaultsPerRequest).toBe(Infinity);
  });

  it('rejects bad values, naming the flag', () => {
    expect(() => parseMockOptions({ 'latency-ms': '-1' })).toThrow('--latency-ms must be a number ≥ 0');
    expect(() => parseMockOptions({ 'latency-ms': 'soon' })).toThrow('--latency-ms');
    expect(() => parseMockOptions({ 'drop-rate': '1.5' })).toThrow('--drop-rate');
    expect(() => parseMockOptions({ capacity: '1.5' })).toThrow('--capacity');
    expect(() => parseMockOptions({ port: '70000' })).toThrow('--port');
    expect(() => parseMockOptions({ models: ' , ' })).toThrow('--models');
    expect(() => parseMockOptions({ 'embedding-dims': '' })).toThrow('--embedding-dims');
  });
});
