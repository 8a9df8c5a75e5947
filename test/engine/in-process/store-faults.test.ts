import { describe, expect, it } from 'vitest';

import { expectedUsage, reply, sleep, useEngineHarness, waitUntil } from '../../helpers/engine-harness.js';

const harness = useEngineHarness();

describe('in-process engine: store faults', () => {
  it('heartbeat, claim and listing faults that happen once are ridden out: the batch completes, every line once, none sent twice', async () => {
    const h = harness();
    await h.startEngine({ opts: { shardLines: 10 } });
    const { file, ids } = await h.writeInput(20, { prefix: 'x' });
    for (const verb of ['heartbeat', 'listClaimable', 'claimShard'] as const) h.faults.fail(verb, { times: 1, error: () => new Error('ECONNRESET: injected') });
    const b = await h.createBatch(file);
    const done = await h.waitDone(b.id);
    expect(done.status).toBe('completed');
    const res = await h.readResults(done);
    expect(res.output.map((l) => l['custom_id']).sort()).toEqual([...ids].sort());
    expect(h.upstream.requests).toHaveLength(20);
    expect(done.usage).toEqual(expectedUsage(ids));
  });

  // One store call failing for a moment (a dropped connection) stops only the shard or the
  // finalizer: the shard is given back and resumed from its segments, the finalization is tried
  // again; the batch completes, every line once.
  it.each(['releaseShard', 'sealSegment', 'addSegment', 'listSegments', 'listShards'] as const)(
    'one transient %s error does not fail the batch: it completes, every line once',
    async (verb) => {
      const h = harness();
      await h.startEngine({ opts: { shardLines: 10 } });
      const { file, ids } = await h.writeInput(20, { prefix: 'x' });
      h.faults.fail(verb, { times: 1, error: () => new Error('ECONNRESET: injected transient store error') });
      const b = await h.createBatch(file);
      const done = await h.waitDone(b.id, 2_500);
      expect(done.errors).toBeNull();
      expect(done.status).toBe('completed');
      const res = await h.readResults(done);
      expect(res.output.map((l) => l['custom_id']).sort()).toEqual([...ids].sort());
      expect(new Set(h.upstream.requests.map((q) => q.customId)).size).toBe(h.upstream.requests.length);
    },
  );

  it('graceful stop mid-batch gives the shard back; the next engine resumes from the segments, re-sending only what was cut off', async () => {
    const h = harness();
    const r1 = await h.startEngine({ maxWorkers: 2, opts: { shardLines: 100, shutdownGraceMs: 150 } });
    // r1: answers in 10 ms, except s-7 which outlives the shutdown grace period.
    h.upstream.script((q) => (q.customId === 's-7' && q.attempt === 1 ? reply.hang() : reply.ok({ delayMs: 10 })));
    const { file, ids } = await h.writeInput(40, { prefix: 's' });
    const b = await h.createBatch(file);
    await waitUntil(() => h.upstream.requests.filter((q) => q.outcome === 'ok').length >= 10, '10 answers');
    const t0 = Date.now();
    await r1.stop();
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(140); // s-7 held the stop for the grace period…
    expect(took).toBeLessThan(600); // …and was then aborted
    expect(h.upstream.requests.find((q) => q.customId === 's-7')!.outcome).toBe('aborted');
    expect(h.upstream.inFlight()).toBe(0);
    const sentByR1 = h.upstream.requests.filter((q) => q.replica === r1.id && q.outcome === 'ok').map((q) => q.customId);

    // Given back: pending, no owner, its segment sealed with the lines written; the batch still runs.
    const [shard] = await h.store.listShards(b.id);
    expect(shard).toMatchObject({ state: 'pending', owner: null, completed: sentByR1.length, failed: 0 });
    const segs = await h.store.listSegments(b.id, { kind: 'output' });
    expect(segs.map((s) => s.lines)).toEqual([sentByR1.length]);
    expect((await h.batch(b.id)).status).toBe('in_progress');
    expect((await h.store.listReplicas(60_000)).find((x) => x.id === r1.id)).toMatchObject({ state: 'stopped', leases: 0 });
    await sleep(100);
    expect(h.upstream.requests.filter((q) => q.startedAt > t0 + took)).toEqual([]);

    const r2 = await h.startEngine({ maxWorkers: 2, opts: { shardLines: 100 } });
    const done = await h.waitDone(b.id);
    expect(done.status).toBe('completed');
    const res = await h.readResults(done);
    expect(res.output.map((l) => l['custom_id']).sort()).toEqual([...ids].sort());
    expect(done.requestCounts).toEqual({ total: 40, completed: 40, failed: 0 });
    expect(done.usage).toEqual(expectedUsage(ids));
    // r2 sent exactly what r1 had not written: s-7 again, and the lines r1 never started.
    const sentByR2 = h.upstream.requests.filter((q) => q.replica === r2.id).map((q) => q.customId);
    expect([...sentByR1, ...sentByR2].sort()).toEqual([...ids].sort());
    expect(sentByR2).toContain('s-7');
  });
});
