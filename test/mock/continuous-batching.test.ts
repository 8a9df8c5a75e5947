import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';

/** `GET /metrics` as name → value (the first sample of each name). */
async function scrape(mock: MockServer): Promise<Record<string, number>> {
  const text = await (await fetch(`${mock.url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^([a-z_:]+)\{[^}]*\} (\S+)$/gm)) out[m[1]!] ??= Number(m[2]);
  return out;
}

const chat = (mock: MockServer, content: string, maxTokens: number) =>
  fetch(`${mock.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mock-model', messages: [{ role: 'user', content }], max_tokens: maxTokens, ignore_eos: true }),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

describe('vLLM-shaped engine over HTTP: continuous batching', () => {
  let mock: MockServer;
  beforeAll(async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0, maxNumSeqs: 4, decodeMsPerToken: 2, decodeGrowthPerSeq: 0, prefillMsPerToken: 0 });
  });
  afterAll(() => mock.close());

  it('runs at most max-num-seqs requests at once (seen in /metrics while a load runs); the rest wait', async () => {
    const started = performance.now();
    const load = Promise.all(Array.from({ length: 12 }, (_, i) => chat(mock, `request ${i}`, 80)));
    let finished = false;
    void load.then(() => (finished = true));
    const seen: Array<{ running: number; waiting: number }> = [];
    while (!finished) {
      const m = await scrape(mock);
      seen.push({ running: m['vllm:num_requests_running']!, waiting: m['vllm:num_requests_waiting']! });
      await new Promise((r) => setTimeout(r, 5));
    }
    const answers = await load;
    const elapsed = performance.now() - started;

    expect(answers.every((a) => a.status === 200 && a.body.usage.completion_tokens === 80)).toBe(true);
    expect(answers[0]!.body.usage.prompt_tokens_details).toEqual({ cached_tokens: 0 });
    expect(Math.max(...seen.map((s) => s.running))).toBe(4);
    expect(seen.some((s) => s.running === 4 && s.waiting >= 4)).toBe(true);
    // 3 waves of 80 steps (a prefill step that samples the first token, 79 decode steps) of 2 ms.
    expect(elapsed).toBeGreaterThanOrEqual(3 * 80 * 2 - 5);
    expect(mock.stats()).toMatchObject({ max_in_flight: 4, in_flight: 0, queued: 0 });
    expect(mock.stats().max_queued).toBeGreaterThanOrEqual(4);
  });

  it('serves waiting requests first come, first served, as slots free', async () => {
    const order: string[] = [];
    // Four blockers of different lengths fill the slots; the first frees one at ~80 ms.
    const blockers = [40, 70, 80, 90].map((n) => chat(mock, `blocker ${n}`, n).then(() => order.push(`blocker ${n}`)));
    const queued = ['a', 'b', 'c', 'd', 'e', 'f'].map(async (name, i) => {
      await new Promise((r) => setTimeout(r, 10 + 5 * i)); // arrive in this order while the blockers run
      await chat(mock, name, 1);
      order.push(name);
    });
    await Promise.all([...blockers, ...queued]);
    // One slot cycles through the queue (one step each) before the second blocker ends.
    expect(order).toEqual(['blocker 40', 'a', 'b', 'c', 'd', 'e', 'f', 'blocker 70', 'blocker 80', 'blocker 90']);
  });

  it('aborts a request whose client left, giving its slot to the next one', async () => {
    const body = (content: string, maxTokens: number) =>
      JSON.stringify({ model: 'mock-model', messages: [{ role: 'user', content }], max_tokens: maxTokens, ignore_eos: true });
    const gone = Array.from({ length: 4 }, () => new AbortController());
    const leaving = gone.map((c, i) =>
      fetch(`${mock.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(`leaving ${i}`, 250), signal: c.signal }).catch(() => 'aborted'),
    );
    while ((await scrape(mock))['vllm:num_requests_running'] !== 4) await new Promise((r) => setTimeout(r, 5));
    const started = performance.now();
    const next = chat(mock, 'next', 5);
    for (const c of gone) c.abort();
    expect(await Promise.all(leaving)).toEqual(['aborted', 'aborted', 'aborted', 'aborted']);
    expect((await next).status).toBe(200);
    expect(performance.now() - started).toBeLessThan(250); // not after the 500 ms the others would have run
    expect((await scrape(mock))['vllm:num_requests_running']).toBe(0);
  });
});
