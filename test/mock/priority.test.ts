import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';

const post = (mock: MockServer, body: Record<string, unknown>) =>
  fetch(`${mock.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mock-model', messages: [{ role: 'user', content: 'hello' }], max_tokens: 1, ...body }),
  });

async function waiting(mock: MockServer): Promise<number> {
  const text = await (await fetch(`${mock.url}/metrics`)).text();
  return Number(/^vllm:num_requests_waiting\{[^}]*\} (\S+)$/m.exec(text)![1]);
}

describe('scheduling policy', () => {
  it('priority: the waiting queue runs lower priority values first, then by arrival', async () => {
    const mock = await startMockServer({ host: '127.0.0.1', port: 0, maxNumSeqs: 1, schedulingPolicy: 'priority', decodeMsPerToken: 2 });
    try {
      const order: string[] = [];
      const track = (name: string, body: Record<string, unknown>) =>
        post(mock, body).then(async (r) => {
          expect(r.status).toBe(200);
          await r.arrayBuffer();
          order.push(name);
        });
      const blocker = track('blocker', { max_tokens: 150, ignore_eos: true }); // holds the one slot ~300 ms
      const queued: Array<Promise<void>> = [];
      for (const [name, priority] of [['p3', 3], ['p1', 1], ['default', undefined], ['p-2', -2], ['p1-later', 1]] as const) {
        const before = await waiting(mock);
        queued.push(track(name, priority === undefined ? {} : { priority }));
        while ((await waiting(mock)) === before) await new Promise((r) => setTimeout(r, 2)); // arrival order is known
      }
      await Promise.all([blocker, ...queued]);
      expect(order).toEqual(['blocker', 'p-2', 'default', 'p1', 'p1-later', 'p3']);
    } finally {
      await mock.close();
    }
  });

  it('fcfs: a request with a non-zero priority gets vLLM’s 400; priority 0 or none is served', async () => {
    const mock = await startMockServer({ host: '127.0.0.1', port: 0, maxNumSeqs: 4, decodeMsPerToken: 0 });
    try {
      const refused = await post(mock, { priority: 1 });
      expect(refused.status).toBe(400);
      expect(await refused.json()).toEqual({
        error: { message: 'Got priority 1 but Priority scheduling is not enabled.', type: 'BadRequestError', param: null, code: 400 },
      });
      const client = new OpenAI({ baseURL: `${mock.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const viaSdk = await client.chat.completions
        .create({ model: 'mock-model', messages: [{ role: 'user', content: 'hi' }], priority: -5 } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming)
        .catch((e: unknown) => e);
      expect(viaSdk).toBeInstanceOf(OpenAI.BadRequestError);
      expect((viaSdk as InstanceType<typeof OpenAI.BadRequestError>).message).toContain('Got priority -5 but Priority scheduling is not enabled.');

      expect((await post(mock, { priority: 0 })).status).toBe(200);
      expect((await post(mock, {})).status).toBe(200);
      const notInt = await post(mock, { priority: 'high' });
      expect(notInt.status).toBe(400);
      expect(((await notInt.json()) as any).error.param).toBe('priority');
      expect(mock.stats().responses_by_status).toEqual({ 200: 2, 400: 3 });
    } finally {
      await mock.close();
    }
  });

  it('without the vLLM mode, priority is ignored as before', async () => {
    const mock = await startMockServer({ host: '127.0.0.1', port: 0 });
    try {
      expect((await post(mock, { priority: 7 })).status).toBe(200);
    } finally {
      await mock.close();
    }
  });
});
