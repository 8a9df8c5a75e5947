import { describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition, with a check of its HELP/TYPE lines. */
async function scrape(mock: MockServer): Promise<{ contentType: string | null; samples: Sample[]; types: Record<string, string> }> {
  const r = await fetch(`${mock.url}/metrics`);
  expect(r.status).toBe(200);
  const text = await r.text();
  const types: Record<string, string> = {};
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types[m[1]!] = m[2]!;
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$/.exec(line);
    expect(m, `a sample line: ${line}`).not.toBeNull();
    const labels = Object.fromEntries([...m![2]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
    samples.push({ name: m![1]!, labels, value: Number(m![3]) });
  }
  return { contentType: r.headers.get('content-type'), samples, types };
}

const VLLM_METRICS = {
  'vllm:num_requests_running': 'gauge',
  'vllm:num_requests_waiting': 'gauge',
  'vllm:kv_cache_usage_perc': 'gauge',
  // vLLM declares counters as vllm:prefix_cache_queries / _hits; prometheus_client scrapes them with _total.
  'vllm:prefix_cache_queries_total': 'counter',
  'vllm:prefix_cache_hits_total': 'counter',
};

const chat = (mock: MockServer, content: string, model = 'mock-model') =>
  fetch(`${mock.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content }], max_tokens: 8 }),
  }).then((r) => r.json() as Promise<any>);

describe('GET /metrics', () => {
  it('exports vLLM V1 names with a model_name label, also when the vLLM mode is off, and is not counted', async () => {
    const mock = await startMockServer({ host: '127.0.0.1', port: 0 });
    try {
      const { contentType, samples, types } = await scrape(mock);
      expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
      for (const [name, type] of Object.entries(VLLM_METRICS)) {
        const s = samples.filter((x) => x.name === name);
        expect(s, name).toHaveLength(1);
        expect(s[0]!.labels).toEqual({ model_name: 'mock-model', engine: '0' });
        expect(s[0]!.value, name).toBe(0);
        expect(types[name]).toBe(type);
      }
      const answers = await Promise.all([chat(mock, 'one'), chat(mock, 'two two'), chat(mock, 'three three three')]);
      const after = (await scrape(mock)).samples;
      const value = (name: string): number => after.find((x) => x.name === name)!.value;
      expect(value('vllm:prompt_tokens_total')).toBe(answers.reduce((n, a) => n + a.usage.prompt_tokens, 0));
      expect(value('vllm:generation_tokens_total')).toBe(answers.reduce((n, a) => n + a.usage.completion_tokens, 0));
      expect(mock.stats().total_requests).toBe(3); // the scrapes are not traffic
    } finally {
      await mock.close();
    }
  });

  it('shows the capacity gate’s running and waiting requests when the vLLM mode is off', async () => {
    const mock = await startMockServer({ host: '127.0.0.1', port: 0, capacity: 1, latencyMs: 150, models: ['my-llama'] });
    try {
      const load = Promise.all([chat(mock, 'a', 'my-llama'), chat(mock, 'b', 'my-llama')]);
      const end = Date.now() + 1000;
      let samples: Sample[] = [];
      const value = (name: string): number | undefined => samples.find((x) => x.name === name)?.value;
      while (Date.now() < end) {
        samples = (await scrape(mock)).samples;
        if (value('vllm:num_requests_waiting') === 1) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(value('vllm:num_requests_running')).toBe(1);
      expect(value('vllm:num_requests_waiting')).toBe(1);
      expect(samples.every((s) => s.labels.model_name === 'my-llama')).toBe(true);
      await load;
    } finally {
      await mock.close();
    }
  });

  it('reports the KV cache in use while the engine runs, and nothing beyond vLLM’s own figures', async () => {
    const mock = await startMockServer({ host: '127.0.0.1', port: 0, maxNumSeqs: 2, decodeMsPerToken: 2, kvCacheTokens: 1000 });
    try {
      const body = JSON.stringify({ model: 'mock-model', messages: [{ role: 'user', content: 'x'.repeat(1200) }], max_tokens: 100, ignore_eos: true });
      const send = () => fetch(`${mock.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-besh-custom-id': 'interactive-1' }, body });
      const load = Promise.all([send(), send()]);
      await new Promise((r) => setTimeout(r, 60));
      const { samples } = await scrape(mock);
      const usage = samples.find((s) => s.name === 'vllm:kv_cache_usage_perc')!.value;
      // Two sequences of 304 prompt tokens each and ~25 generated tokens: about 0.66 of 1,000.
      expect(usage).toBeGreaterThan(0.6);
      expect(usage).toBeLessThanOrEqual(0.82);
      // vLLM does not know who sent a request: no label or series tells one client from another.
      const itl = ['vllm:inter_token_latency_seconds_bucket', 'vllm:inter_token_latency_seconds_count', 'vllm:inter_token_latency_seconds_sum'];
      expect(new Set(samples.map((s) => s.name))).toEqual(new Set([...Object.keys(VLLM_METRICS), 'vllm:prompt_tokens_total', 'vllm:generation_tokens_total', ...itl]));
      expect(samples.every((s) => Object.keys(s.labels).join() === (s.name.endsWith('_bucket') ? 'model_name,engine,le' : 'model_name,engine'))).toBe(true);
      await load;
      // Every token after a sequence's first is one observation: 2 × 99. A decode step of two
      // sequences lasts 2 ms × (1 + 0.03) by the engine's formula; when the second request
      // arrived a step late (a loaded machine), a few steps of one sequence (2 ms) or with the
      // other's 304-token prefill in them (+ 9.1 ms) are among them.
      const done = (await scrape(mock)).samples;
      const v = (name: string, le?: string): number => done.find((x) => x.name === name && x.labels.le === le)!.value;
      expect(v('vllm:inter_token_latency_seconds_count')).toBe(2 * 99);
      const mean = v('vllm:inter_token_latency_seconds_sum') / (2 * 99);
      expect(mean).toBeGreaterThanOrEqual(0.002);
      expect(mean).toBeLessThan(0.0025);
      expect(v('vllm:inter_token_latency_seconds_bucket', '0.01')).toBeGreaterThanOrEqual(2 * 99 - 2);
      expect(v('vllm:inter_token_latency_seconds_bucket', '0.025')).toBe(2 * 99);
      expect(v('vllm:inter_token_latency_seconds_bucket', '+Inf')).toBe(2 * 99);
    } finally {
      await mock.close();
    }
  });
});
