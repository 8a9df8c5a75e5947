import { describe, expect, it } from 'vitest';

import { expiresAtLeastIn, reply, sleep, useEngineHarness, waitUntil } from '../../helpers/engine-harness.js';

const harness = useEngineHarness();

describe('in-process engine: stop priorities', () => {
  // A cancel waiting for its in-flight requests, then the deadline: the shard's expire overrides
  // the cancel (its lines say batch_expired), and the finalizer ends the batch expired, not cancelled.
  it('cancel, then the deadline passes before the cancel settled → expired (expiry wins)', async () => {
    const h = harness();
    // A long cancel grace: the in-flight requests are still running when the deadline passes.
    const r = await h.startEngine({ maxWorkers: 2, opts: { cancelGraceMs: 10_000, shardLines: 100 } });
    const { file, ids } = await h.writeInput(6, { prefix: 'ce' });
    h.upstream.script(() => reply.hang());
    const b = await h.createBatch(file, { expiresAt: expiresAtLeastIn(400) });
    await waitUntil(() => h.upstream.inFlight() === 2, '2 requests in flight');

    expect((await r.engine.cancel(b.id)).status).toBe('cancelling');
    await sleep(100);
    expect((await h.batch(b.id)).status).toBe('cancelling');

    const done = await h.waitDone(b.id, 2_500);
    const res = await h.readResults(done);
    // Nothing answered: every line is in the error file once, as not executed before the deadline.
    expect(res.output).toEqual([]);
    expect(res.error.map((l) => l['custom_id']).sort()).toEqual([...ids].sort());
    expect(done.requestCounts).toEqual({ total: 6, completed: 0, failed: 6 });
    expect(h.upstream.requests).toHaveLength(2);
    for (const l of res.error) expect(l['error'].code).toBe('batch_expired');
    expect(done.cancellingAt).toEqual(expect.any(Number));
    // BATCH_TRANSITIONS: "cancelling → expired: the deadline passed before the cancel settled (expiry wins)".
    expect(done.status).toBe('expired');
    expect(done.expiredAt).toEqual(expect.any(Number));
    expect(done.cancelledAt).toBeNull();
  });

  it('delete during a cancel: the batch is gone at once and nothing more is written or sent', async () => {
    const h = harness();
    const r = await h.startEngine({ maxWorkers: 2, opts: { cancelGraceMs: 10_000 } });
    const { file } = await h.writeInput(25, { prefix: 'dc' });
    h.upstream.script((q) => (q.customId === 'dc-0' ? reply.ok() : reply.hang()));
    const b = await h.createBatch(file);
    await waitUntil(async () => h.upstream.inFlight() === 2 && (await h.batch(b.id)).requestCounts.completed === 1, '1 answered, 2 in flight');
    expect((await r.engine.cancel(b.id)).status).toBe('cancelling');
    await sleep(60);
    expect(h.upstream.inFlight()).toBe(2); // still in their cancel grace

    const t0 = Date.now();
    const removed = await r.engine.deleteBatch(b.id);
    expect(removed.status).toBe('cancelling');
    expect(await h.store.getBatch(b.id)).toBeNull();
    // The in-flight requests were aborted, and the blobs are gone once deleteBatch returns (one replica).
    expect(h.upstream.inFlight()).toBe(0);
    expect(h.upstream.requests.every((q) => q.endedAt !== null && q.endedAt - t0 < 100)).toBe(true);
    const sent = h.upstream.requests.length;
    const appends = h.blobs.appends.length;
    const calls = h.faults.calls.length;

    await sleep(300); // several heartbeats, claim rounds and a janitor sweep
    expect(h.upstream.requests).toHaveLength(sent);
    expect(h.blobs.appends).toHaveLength(appends);
    // No status change after the delete, no file, no shard, segment or tombstone left, no blob.
    expect(h.events.filter((e) => e.batchId === b.id && e.at >= t0).map((e) => e.status)).toEqual(['deleted']);
    const writes = h.faults.calls.slice(calls).filter((c) => ['transition', 'addSegment', 'sealSegment', 'releaseShard', 'claimShard', 'claimBatch'].includes(c.verb) && c.args[0] === b.id);
    expect(writes).toEqual([]);
    expect(await h.store.listShards(b.id)).toEqual([]);
    expect(await h.store.listSegments(b.id)).toEqual([]);
    expect(await h.store.listTombstones(10)).toEqual([]);
    expect((await h.store.listFiles({ limit: 100, order: 'asc' })).data.filter((f) => f.batchId === b.id)).toEqual([]);
    expect(h.blobs.keysUnder(`batches/${b.id}/`)).toEqual([]);
  });
});
