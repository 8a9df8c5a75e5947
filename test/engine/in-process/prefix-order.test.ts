import { describe, expect, it } from 'vitest';

import { groupedInputKey } from '../../../src/store/blob-keys.js';
import { useEngineHarness, waitUntil } from '../../helpers/engine-harness.js';

const harness = useEngineHarness();

const PROMPTS = Array.from({ length: 8 }, (_, k) => `You are assistant number ${k}. ${'Follow these shared instructions carefully. '.repeat(8)}`);

/** 8 system prompts × 40 lines, shuffled (deterministically): custom ids `g<prompt>-<i>`. */
function sharedPrefixLines(): string {
  const lines: string[] = [];
  for (let i = 0; i < 320; i++) {
    const k = (i * 37 + 11) % 8;
    lines.push(
      JSON.stringify({
        custom_id: `g${k}-${i}`,
        method: 'POST',
        url: '/v1/chat/completions',
        body: { model: 'mock-model', messages: [{ role: 'system', content: PROMPTS[k] }, { role: 'user', content: `question ${i}` }] },
      }),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** How many times the prompt changes along the order requests were sent in. */
const runs = (ids: string[]): number => ids.map((id) => id.split('-')[0]).filter((g, i, all) => i === 0 || g !== all[i - 1]).length;

/** The most distinct prompts among any `width` requests sent one after another. */
function mostPromptsInWindow(ids: string[], width: number): number {
  const groups = ids.map((id) => id.split('-')[0]);
  let most = 0;
  for (let i = 0; i + width <= groups.length; i++) most = Math.max(most, new Set(groups.slice(i, i + width)).size);
  return most;
}

describe('in-process engine: prefix-aware ordering', () => {
  it('sends lines grouped by their system prompt, every line once, and removes the grouped copy at the end', async () => {
    const h = harness();
    await h.startEngine({ maxWorkers: 4, opts: { prefixOrder: true, shardLines: 100 } });
    const { file, ids } = await h.writeInput(sharedPrefixLines());
    const b = await h.createBatch(file);
    const done = await h.waitDone(b.id, 5_000);
    expect(done.status).toBe('completed');
    expect(done.inputOrder).toBe('prefix');
    const sent = h.upstream.requests.sort((x, y) => x.seq - y.seq).map((q) => q.customId);
    expect([...sent].sort()).toEqual([...ids].sort());
    // 8 groups in the grouped copy, cut into shards of 100 lines; the next shard starts while the
    // current one ends, so two shards' requests interleave for a while. Still, any 8 requests in
    // a row use at most 3 prompts (a prompt or two per shard), where in arrival order every run of
    // 8 uses all 8.
    expect(mostPromptsInWindow(sent, 8)).toBeLessThanOrEqual(3);
    const res = await h.readResults(done);
    expect(res.output.map((l) => l['custom_id']).sort()).toEqual([...ids].sort());
    // Removed right after the terminal write.
    await waitUntil(async () => (await h.blobs.real.size(groupedInputKey(b.id))) === null, 'the grouped copy to be removed');
  });

  it('keeps the input order when it is switched off, or when nothing is shared', async () => {
    const h = harness();
    await h.startEngine({ maxWorkers: 4, opts: { prefixOrder: false, shardLines: 100 } });
    const off = await h.createBatch((await h.writeInput(sharedPrefixLines())).file);
    const done = await h.waitDone(off.id, 5_000);
    expect(done.inputOrder).toBe('file');
    const arrival = h.upstream.requests.sort((x, y) => x.seq - y.seq).map((q) => q.customId);
    expect(runs(arrival)).toBeGreaterThan(200);
    expect(mostPromptsInWindow(arrival, 8)).toBe(8);

    const h2 = harness();
    await h2.startEngine({ maxWorkers: 4, opts: { prefixOrder: true, shardLines: 100 } });
    const unique = await h2.createBatch((await h2.writeInput(120, { prefix: 'u' })).file);
    expect((await h2.waitDone(unique.id, 5_000)).inputOrder).toBe('file');
  });
});
