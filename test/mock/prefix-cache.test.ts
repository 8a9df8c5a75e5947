import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';

async function scrape(mock: MockServer): Promise<Record<string, number>> {
  const text = await (await fetch(`${mock.url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^([a-z_:]+)\{[^}]*\} (\S+)$/gm)) out[m[1]!] ??= Number(m[2]);
  return out;
}

/** 800 tokens (3,200 characters) shared by every request below. */
const SYSTEM = Array.from({ length: 1100 }, (_, i) => `s${String(i % 100).padStart(2, '0')}`).join('').slice(0, 3200);

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t };
}

describe('vLLM-shaped engine over HTTP: prefix cache', () => {
  let mock: MockServer;
  let client: OpenAI;
  beforeAll(async () => {
    // An uncached 800-token prefix costs 200 ms of prefill; a cached one almost nothing.
    mock = await startMockServer({ host: '127.0.0.1', port: 0, maxNumSeqs: 8, prefixCacheTokens: 100_000, prefillMsPerToken: 0.25, decodeMsPerToken: 1 });
    client = new OpenAI({ baseURL: `${mock.url}/v1`, apiKey: 'x', maxRetries: 0 });
  });
  afterAll(() => mock.close());

  const ask = (question: string) =>
    client.chat.completions.create({
      model: 'mock-model',
      messages: [
        { role: 'system', content: SYSTEM },
        { role: 'user', content: question },
      ],
      max_tokens: 1,
    });

  it('reports a shared prefix as cached tokens, in usage and metrics, and serves it faster', async () => {
    const first = await timed(() => ask('What is continuous batching?'));
    const second = await timed(() => ask('And what is a prefix cache?'));
    const unrelated = await timed(() =>
      client.chat.completions.create({ model: 'mock-model', messages: [{ role: 'user', content: `${SYSTEM.slice(1)}!` }], max_tokens: 1 }),
    );

    expect(first.value.usage!.prompt_tokens_details).toEqual({ cached_tokens: 0 });
    // The system message and the user header are 804 shared tokens: 50 whole blocks of 16.
    expect(second.value.usage!.prompt_tokens_details).toEqual({ cached_tokens: 800 });
    expect(unrelated.value.usage!.prompt_tokens_details).toEqual({ cached_tokens: 0 }); // same text, shifted: no common prefix
    expect(first.ms).toBeGreaterThanOrEqual(195);
    expect(second.ms).toBeLessThan(first.ms - 100);
    expect(unrelated.ms).toBeGreaterThanOrEqual(195);

    const m = await scrape(mock);
    const prompts = [first, second, unrelated].reduce((n, r) => n + r.value.usage!.prompt_tokens, 0);
    expect(m['vllm:prefix_cache_queries_total']).toBe(prompts);
    expect(m['vllm:prefix_cache_hits_total']).toBe(800);
    expect(m['vllm:prompt_tokens_total']).toBe(prompts);
    expect(m['vllm:kv_cache_usage_perc']).toBe(0); // nothing running: cached blocks are free memory
  });

  it('reports cached input tokens on /v1/responses too', async () => {
    const ask2 = (input: string) => client.responses.create({ model: 'mock-model', instructions: SYSTEM, input, max_output_tokens: 1 });
    const a = await ask2('first question');
    const b = await ask2('second question');
    expect(a.usage!.input_tokens_details).toEqual({ cached_tokens: 0, cache_write_tokens: 800 });
    expect(b.usage!.input_tokens_details).toEqual({ cached_tokens: 800, cache_write_tokens: 0 }); // 808 tokens: no whole block past the instructions
  });
});
