import { describe, expect, it } from 'vitest';

import { expectedUsage, reply, sleep, useEngineHarness, waitUntil } from '../../helpers/engine-harness.js';

const harness = useEngineHarness();

describe('in-process engine: cancel', () => {
  it.each([
    { via: 'the validating replica' as const },
    { via: 'another replica (seen at its heartbeat)' as const },
  ])('cancel while validating (the validator holds the lease), via $via → cancelled, nothing sent', async ({ via }) => {
    const h = harness();
    const [a, b] = await h.startReplicas(2, { opts: { maxConcurrentBatches: 1 } });
    const gate = h.gate();
    // The validator's first store read waits: it holds the batch lease meanwhile.
    h.faults.hold('getFile', gate, { times: 1 });
    const { file } = await h.writeInput(20, { prefix: 'v' });
    const batch = await h.createBatch(file, { via: a! });
    await gate.entered;
    const validator = h.claims().find((c) => c.kind === 'batch' && c.batchId === batch.id)!;
    expect(validator).toBeDefined();
    const owner = validator.replica === a!.id ? a! : b!;
    const other = owner === a ? b! : a!;
    expect((await h.store.listReplicas(10_000)).find((x) => x.id === owner.id)!.leases).toBe(1);

    const cancelling = await (via === 'the validating replica' ? owner : other).engine.cancel(batch.id);
    expect(cancelling.status).toBe('cancelling');
    if (via !== 'the validating replica') await sleep(3 * h.options().heartbeatMs);
    expect((await h.batch(batch.id)).status).toBe('cancelling');
    gate.open();

    const done = await h.waitDone(batch.id);
    expect(done.status).toBe('cancelled');
    expect(done.inProgressAt).toBeNull();
    expect(done.outputFileId).toBeNull();
    expect(done.errorFileId).toBeNull();
    expect(done.requestCounts).toEqual({ total: 0, completed: 0, failed: 0 });
    expect(await h.store.listShards(batch.id)).toEqual([]);
    await sleep(100);
    expect(h.upstream.requests).toEqual([]);
    // Only the validator's lease was ever taken on it: no shard, no second validation.
    expect(h.claims().filter((c) => c.batchId === batch.id)).toHaveLength(1);
    expect(h.events.filter((e) => e.batchId === batch.id).map((e) => e.status)).toEqual(['validating', 'cancelling', 'cancelled']);
  });

  it('cancel of a queued batch (MAX_CONCURRENT_BATCHES full) → cancelled at once, never sent', async () => {
    const h = harness();
    const r = await h.startEngine({ maxWorkers: 2, opts: { maxConcurrentBatches: 1, claimIntervalMs: 5_000 } });
    h.upstream.script(() => reply.hang());
    const first = await h.createBatch((await h.writeInput(10, { prefix: 'first' })).file);
    await h.waitForStatus(first.id, 'in_progress');
    await waitUntil(() => h.upstream.inFlight() === 2, 'the first batch to hold both workers');
    const queued = await h.createBatch((await h.writeInput(5, { prefix: 'queued' })).file);
    await sleep(50);
    expect((await h.batch(queued.id)).status).toBe('validating');
    expect(await h.store.listQueuedBatches(undefined, 10)).toEqual([{ id: queued.id, project: 'proj-a' }]);

    const t0 = Date.now();
    const answered = await r.engine.cancel(queued.id);
    expect(['cancelling', 'cancelled']).toContain(answered.status);
    // Cancelled without waiting for a slot or a claim round (the next timed round is 5 s away).
    const done = await h.waitDone(queued.id, 200);
    expect(Date.now() - t0).toBeLessThan(100);
    expect(done.status).toBe('cancelled');
    expect(done.inProgressAt).toBeNull();
    expect(done.outputFileId).toBeNull();
    expect(done.errorFileId).toBeNull();
    expect(await h.store.listShards(queued.id)).toEqual([]);
    expect(h.upstream.sentFor(queued.id)).toEqual([]);
    expect(await h.store.listQueuedBatches(undefined, 10)).toEqual([]);
    // The first batch was not disturbed.
    expect((await h.batch(first.id)).status).toBe('in_progress');
    expect(h.upstream.inFlight()).toBe(2);
  });

  it('cancel during finalizing (compose delayed) → cancelled, with every result', async () => {
    const h = harness();
    const r = await h.startEngine({ maxWorkers: 4 });
    const gate = h.gate();
    h.blobs.hooks.beforeCompose = () => gate.wait();
    const { file, ids } = await h.writeInput(24, { prefix: 'f' });
    const b = await h.createBatch(file);
    await gate.entered;
    expect((await h.batch(b.id)).status).toBe('finalizing');

    expect((await r.engine.cancel(b.id)).status).toBe('cancelling');
    await sleep(3 * h.options().heartbeatMs); // heartbeats see it cancelling; the finalizer goes on
    expect((await h.batch(b.id)).status).toBe('cancelling');
    gate.open();

    const done = await h.waitDone(b.id);
    expect(done.status).toBe('cancelled');
    expect(done.finalizingAt).toEqual(expect.any(Number));
    expect(done.cancellingAt).toEqual(expect.any(Number));
    expect(done.cancelledAt).toEqual(expect.any(Number));
    expect(done.completedAt).toBeNull();
    const res = await h.readResults(done);
    expect(res.output.map((l) => l['custom_id']).sort()).toEqual([...ids].sort());
    expect(res.error).toEqual([]);
    expect(done.errorFileId).toBeNull();
    expect(done.requestCounts).toEqual({ total: 24, completed: 24, failed: 0 });
    expect(done.usage).toEqual(expectedUsage(ids));
    expect(h.upstream.requests).toHaveLength(24);
    expect(h.events.filter((e) => e.batchId === b.id).map((e) => e.status)).toEqual(['validating', 'in_progress', 'finalizing', 'cancelling', 'cancelled']);
    // Composed once, by the one finalizer.
    expect(h.blobs.composes.filter((c) => c.key.startsWith(`batches/${b.id}/`)).map((c) => c.key.split('/').at(-1))).toEqual(['output.jsonl']);
  });
});
