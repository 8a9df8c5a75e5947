import { describe, expect, it } from 'vitest';

import { expectedUsage, expiresAtLeastIn, reply, sleep, useEngineHarness, waitUntil } from '../../helpers/engine-harness.js';

const harness = useEngineHarness();

describe('in-process engine: replicas on one store', () => {
  it('two replicas work one batch at once: both run shards, every line once, validated once', async () => {
    const h = harness();
    const [a, b] = await h.startReplicas(2, { maxWorkers: 2, opts: { shardLines: 10 } });
    h.upstream.script(() => reply.ok({ delayMs: 12 }));
    const { file, ids } = await h.writeInput(80, { prefix: 'two' });
    const batch = await h.createBatch(file, { via: a! });

    // At some moment both replicas hold leases of it at once.
    const both = await waitUntil(async () => {
      const rs = await h.store.listReplicas(10_000);
      return rs.length === 2 && rs.every((r) => r.leases > 0) ? rs : null;
    }, 'both replicas to hold a lease', 3_000, 2);
    expect(both.map((r) => r.id).sort()).toEqual([a!.id, b!.id]);
    expect(both.every((r) => r.state === 'running')).toBe(true);

    const done = await h.waitDone(batch.id);
    expect(done.status).toBe('completed');
    const res = await h.readResults(done);
    const out = res.output.map((l) => l['custom_id'] as string);
    expect(out.sort()).toEqual([...ids].sort());
    expect(res.error).toEqual([]);
    expect(done.requestCounts).toEqual({ total: 80, completed: 80, failed: 0 });
    expect(done.usage).toEqual(expectedUsage(ids));
    // Each line was sent once, by one replica or the other; both sent some.
    expect(h.upstream.requests).toHaveLength(80);
    expect(h.upstream.customIds(a!.id).size).toBeGreaterThan(0);
    expect(h.upstream.customIds(b!.id).size).toBeGreaterThan(0);
    // Each of the 8 shards was claimed once, and both replicas claimed shards.
    const shardClaims = h.claims().filter((c) => c.kind === 'shard');
    expect(shardClaims.map((c) => c.shardNo).sort((x, y) => x! - y!)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(shardClaims.map((c) => c.replica))).toEqual(new Set([a!.id, b!.id]));
    // Validation happened once: one batch lease for validating, one whole read of the input.
    expect(h.fullReads(file.blobKey)).toHaveLength(1);
    const batchClaims = h.claims().filter((c) => c.kind === 'batch');
    expect(batchClaims).toHaveLength(2); // the validator's, then the finalizer's
    expect(h.logs.filter((l) => l.msg === 'batch in_progress')).toHaveLength(1);
    expect(h.logs.filter((l) => l.msg === 'batch completed')).toHaveLength(1);
  });

  it('fair share at claim time: with MAX_CONCURRENT_BATCHES = 1 on each of two replicas, each takes a different project first', async () => {
    const h = harness();
    h.upstream.script(() => reply.hang());
    // Oldest first: two batches of project p, then one of q.
    const p1 = h.batchOf((await h.writeInput(5, { prefix: 'p1', project: 'p' })).file);
    await h.store.insertBatch(p1);
    const p2 = h.batchOf((await h.writeInput(5, { prefix: 'p2', project: 'p' })).file);
    await h.store.insertBatch(p2);
    const q1 = h.batchOf((await h.writeInput(5, { prefix: 'q1', project: 'q' })).file);
    await h.store.insertBatch(q1);

    const [a] = await h.startReplicas(1, { opts: { maxConcurrentBatches: 1 } });
    await waitUntil(() => h.claims().some((c) => c.replica === a!.id), 'A to claim');
    const [b] = await h.startReplicas(1, { opts: { maxConcurrentBatches: 1 } });
    await waitUntil(() => h.claims().some((c) => c.replica === b!.id), 'B to claim');
    await sleep(100);

    const first = (r: string) => h.claims().find((c) => c.replica === r)!;
    expect(first(a!.id)).toMatchObject({ kind: 'batch', batchId: p1.id, project: 'p' });
    // B takes q's batch, although p's second batch is older: p already holds a lease on the cluster.
    expect(first(b!.id)).toMatchObject({ kind: 'batch', batchId: q1.id, project: 'q' });
    expect(await h.store.listQueuedBatches(undefined, 10)).toEqual([{ id: p2.id, project: 'p' }]);
    expect((await h.batch(p2.id)).status).toBe('validating');
    expect(h.upstream.sentFor(p2.id)).toEqual([]);
    expect(h.upstream.sentFor(p1.id).every((q) => q.replica === a!.id)).toBe(true);
    expect(h.upstream.sentFor(q1.id).every((q) => q.replica === b!.id)).toBe(true);
  });

  it('delete while running on another replica: the other stops within a heartbeat, the tombstone is purged, the blobs are gone', async () => {
    const h = harness();
    const [a, b] = await h.startReplicas(2, { maxWorkers: 2, opts: { shardLines: 10 } });
    h.upstream.script((q) => (q.customId.endsWith('-0') || q.customId.endsWith('-1') ? reply.ok() : reply.hang()));
    const { file } = await h.writeInput(40, { prefix: 'del' });
    const batch = await h.createBatch(file, { via: a! });
    await waitUntil(() => h.upstream.inFlight(a!.id) === 2 && h.upstream.inFlight(b!.id) === 2, 'both replicas to have requests in flight');
    await waitUntil(() => h.blobs.keysUnder(`batches/${batch.id}/segments/`).length > 0, 'a segment on disk');

    const t0 = Date.now();
    const removed = await a!.engine.deleteBatch(batch.id);
    expect(removed.id).toBe(batch.id);
    expect(await h.store.getBatch(batch.id)).toBeNull();
    expect(h.upstream.inFlight(a!.id)).toBe(0); // A's own tasks stopped before deleteBatch returned
    // B's shards still hold leases: the tombstone stays until B lets go.
    expect((await h.store.listTombstones(10)).map((t) => t.id)).toEqual([batch.id]);

    await waitUntil(() => h.upstream.inFlight(b!.id) === 0, "B's requests to be aborted", 1_000, 1);
    const stoppedIn = Date.now() - t0;
    expect(stoppedIn).toBeLessThanOrEqual(h.options().heartbeatMs + 30);
    expect(h.upstream.requests.filter((q) => q.replica === b!.id && q.startedAt > t0)).toEqual([]);

    await waitUntil(async () => (await h.store.listTombstones(10)).length === 0, 'the tombstone to be purged', 1_500);
    expect(h.blobs.keysUnder(`batches/${batch.id}/`)).toEqual([]);
    expect(await h.store.listShards(batch.id)).toEqual([]);
    expect(await h.store.listSegments(batch.id)).toEqual([]);
    const sent = h.upstream.requests.length;
    await sleep(200);
    expect(h.upstream.requests).toHaveLength(sent);
    expect(h.blobs.keysUnder(`batches/${batch.id}/`)).toEqual([]);
    expect(await h.store.getBatch(batch.id)).toBeNull();
    expect(h.events.filter((e) => e.batchId === batch.id && e.at >= t0).map((e) => e.status)).toEqual(['deleted']);
  });

  it('a batch no replica took (all busy) expires by the janitor, never sent', async () => {
    const h = harness();
    const [a, b] = await h.startReplicas(2, { maxWorkers: 2, opts: { maxConcurrentBatches: 1 } });
    h.upstream.script(() => reply.hang());
    const x1 = await h.createBatch((await h.writeInput(4, { prefix: 'x1' })).file, { via: a! });
    const x2 = await h.createBatch((await h.writeInput(4, { prefix: 'x2' })).file, { via: a! });
    await h.waitForStatus(x1.id, 'in_progress');
    await h.waitForStatus(x2.id, 'in_progress');
    await waitUntil(() => h.upstream.inFlight(a!.id) > 0 && h.upstream.inFlight(b!.id) > 0, 'both replicas busy');

    const { file } = await h.writeInput(3, { prefix: 'late' });
    const late = await h.createBatch(file, { via: b!, expiresAt: expiresAtLeastIn(150) });
    const done = await h.waitDone(late.id, 2_500);
    expect(done.status).toBe('expired');
    expect(done.expiredAt!).toBeGreaterThanOrEqual(late.expiresAt);
    expect(done.inProgressAt).toBeNull();
    expect(done.outputFileId).toBeNull();
    expect(done.errorFileId).toBeNull();
    expect(h.upstream.sentFor(late.id)).toEqual([]);
    expect(await h.store.listShards(late.id)).toEqual([]);
    // No replica ever claimed it: the janitor's compare-and-set expired it.
    expect(h.claims().filter((c) => c.batchId === late.id)).toEqual([]);
    const byJanitor = h.faults.of('expireUnclaimed').filter((c) => Array.isArray(c.result) && (c.result as Array<{ id: string }>).some((x) => x.id === late.id));
    expect(byJanitor).toHaveLength(1);
    expect((await h.batch(x1.id)).status).toBe('in_progress');
    expect((await h.batch(x2.id)).status).toBe('in_progress');
  });

  // Both replicas read the same claimable list in the same round (one NOTIFY wakes every replica):
  // a claim lost to the other still counts for its project, so the loser takes the other project.
  it('fair share holds when both replicas claim in the same round (woken by the same event)', async () => {
    const h = harness();
    h.upstream.script(() => reply.hang());
    // Both replicas' first claim rounds wait until the three batches exist, then read them together.
    const gate = h.gate();
    h.faults.hold('listClaimable', gate, { times: 2 });
    const [a, b] = await h.startReplicas(2, { opts: { maxConcurrentBatches: 1 } });
    const p1 = h.batchOf((await h.writeInput(5, { prefix: 'p1', project: 'p' })).file);
    const p2 = h.batchOf((await h.writeInput(5, { prefix: 'p2', project: 'p' })).file);
    const q1 = h.batchOf((await h.writeInput(5, { prefix: 'q1', project: 'q' })).file);
    for (const x of [p1, p2, q1]) await h.store.insertBatch(x);
    await waitUntil(() => gate.waiters === 2, 'both claim rounds to wait');
    gate.open();
    await waitUntil(() => h.claims().some((c) => c.replica === a!.id) && h.claims().some((c) => c.replica === b!.id), 'both replicas to claim');
    const first = [a!, b!].map((r) => h.claims().find((c) => c.replica === r.id)!);
    expect(first.map((c) => c.kind)).toEqual(['batch', 'batch']);
    expect(new Set(first.map((c) => c.project))).toEqual(new Set(['p', 'q']));
    expect(new Set(first.map((c) => c.batchId))).toEqual(new Set([p1.id, q1.id]));
  });

  // A batch deleted while another replica composes its files: the finalizer removes what it
  // composed once it finds the batch gone, so no blob of the batch survives.
  it('delete while another replica finalizes: no blob of the batch survives', async () => {
    const h = harness();
    const [b] = await h.startReplicas(1);
    const gate = h.gate();
    // B's compose has streamed the output and is about to land it.
    h.blobs.hooks.beforeCommit = async (key) => {
      if (key.endsWith('/output.jsonl')) await gate.wait();
    };
    const { file } = await h.writeInput(12, { prefix: 'fd' });
    const batch = await h.createBatch(file, { via: b! });
    await gate.entered;
    expect((await h.batch(batch.id)).status).toBe('finalizing');
    const [a] = await h.startReplicas(1);
    await a!.engine.deleteBatch(batch.id);
    expect(await h.store.getBatch(batch.id)).toBeNull();
    gate.open();
    await sleep(2 * h.options().heartbeatMs + 300); // B hears of the delete; janitors sweep
    expect(h.blobs.keysUnder(`batches/${batch.id}/`)).toEqual([]);
    expect(await h.store.listTombstones(10)).toEqual([]);
    expect((await h.store.listFiles({ limit: 100, order: 'asc' })).data.filter((f) => f.batchId === batch.id)).toEqual([]);
  });
});
