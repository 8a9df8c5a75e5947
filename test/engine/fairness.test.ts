import type OpenAI from 'openai';
import { describe, expect, it } from 'vitest';

import { chatLines, readJsonl, upload, waitDone, waitFor } from '../helpers/batches.js';
import { stackFactory } from '../helpers/stack.js';

const setup = stackFactory('besh-engine-fair-');

async function create(client: OpenAI, jsonl: string) {
  const fileId = await upload(client, jsonl);
  return client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
}

describe('engine: fair sharing of MAX_WORKERS between batches', () => {
  it('a small batch started after a big one finishes long before it, within MAX_WORKERS in flight', async () => {
    const { mock, client } = await setup({ latencyMs: 20 }, { MAX_WORKERS: '8', MAX_CONCURRENT_BATCHES: '2' });
    const big = await create(client, chatLines(2000, { prefix: 'big' }));
    await waitFor(client, big.id, (b) => b.status === 'in_progress' && b.request_counts!.completed > 0, 20_000);
    const small = await create(client, chatLines(20, { prefix: 'small' }));

    const smallDone = await waitDone(client, small.id, 20_000);
    const bigAtThatTime = await client.batches.retrieve(big.id);
    expect(smallDone.status).toBe('completed');
    expect(smallDone.request_counts).toEqual({ total: 20, completed: 20, failed: 0 });
    expect(bigAtThatTime.status).toBe('in_progress');
    expect(bigAtThatTime.request_counts!.completed).toBeLessThan(1000);

    const bigDone = await waitDone(client, big.id, 60_000);
    expect(bigDone.status).toBe('completed');
    expect(bigDone.request_counts).toEqual({ total: 2000, completed: 2000, failed: 0 });
    expect((await readJsonl(client, smallDone.output_file_id)).map((l) => l.custom_id).sort()).toEqual(
      Array.from({ length: 20 }, (_, i) => `small-${i}`).sort(),
    );

    const st = mock.stats();
    expect(st.max_in_flight).toBeLessThanOrEqual(8);
    // …and the slots were used: the engine kept (nearly) all 8 busy.
    expect(st.max_in_flight).toBeGreaterThanOrEqual(7);
    expect(st.total_requests).toBe(2020);
  });

  it('MAX_CONCURRENT_BATCHES=1: the second batch waits as validating with queue_position 1 until the first ends', async () => {
    const { mock, client } = await setup({ latencyMs: 20 }, { MAX_WORKERS: '4', MAX_CONCURRENT_BATCHES: '1' });
    const first = await create(client, chatLines(200, { prefix: 'one' }));
    await waitFor(client, first.id, (b) => b.status === 'in_progress');
    const second = await create(client, chatLines(10, { prefix: 'two' }));
    const third = await create(client, chatLines(10, { prefix: 'three' }));
    expect(second.status).toBe('validating');
    expect((second as any).queue_position).toBe(1);

    // While the first runs, the second keeps its OpenAI status and its place; nothing of it is sent.
    for (let i = 0; i < 5; i++) {
      const [f, s, t] = await Promise.all([client.batches.retrieve(first.id), client.batches.retrieve(second.id), client.batches.retrieve(third.id)]);
      if (f.status !== 'in_progress') break;
      expect(s.status).toBe('validating');
      expect((s as any).queue_position).toBe(1);
      expect(s.in_progress_at).toBeNull();
      expect((t as any).queue_position).toBe(2);
      expect(Object.keys(mock.stats().received).some((k) => k.startsWith('two-'))).toBe(false);
      await new Promise((r) => setTimeout(r, 100));
    }
    const firstDone = await waitDone(client, first.id, 30_000);
    const secondDone = await waitDone(client, second.id, 30_000);
    const thirdDone = await waitDone(client, third.id, 30_000);
    for (const b of [firstDone, secondDone, thirdDone]) expect(b.status).toBe('completed');
    expect((secondDone as any).queue_position).toBeNull();
    // One at a time: the second started only once the first had sent its every request, the third
    // after the second. (Finalizing holds no MAX_CONCURRENT_BATCHES place: work-claimer.ts.)
    expect(secondDone.in_progress_at!).toBeGreaterThanOrEqual(firstDone.finalizing_at!);
    expect(thirdDone.in_progress_at!).toBeGreaterThanOrEqual(secondDone.finalizing_at!);
    expect(mock.stats().total_requests).toBe(220);
  });
});
