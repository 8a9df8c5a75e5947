import { describe, expect, it } from 'vitest';

import { faultyWriter, reply, sleep, useEngineHarness } from '../../helpers/engine-harness.js';

const harness = useEngineHarness();

describe('in-process engine: a result that cannot be written', () => {
  it.each([
    { mode: 'append' as const, what: 'append throws (the writer is broken)' },
    { mode: 'written' as const, what: 'written() rejects (the write to the file failed)' },
    { mode: 'seal' as const, what: 'seal() rejects (fsync failed when the shard ends)' },
  ])('$what → the batch fails with internal_error naming the cause; nothing ends as if complete', async ({ mode }) => {
    const h = harness();
    await h.startEngine({ maxWorkers: 2, opts: { shardLines: 10 } });
    h.upstream.script(() => reply.ok({ delayMs: 2 }));
    // The output segment of shard 0 breaks after 3 lines; every other segment works.
    h.blobs.hooks.openSegment = (key, w) => (/\/output-000000-/.test(key) ? faultyWriter(w, mode, 3, `EIO: injected ${mode} failure`) : w);
    const { file } = await h.writeInput(20, { prefix: 'w' });
    const b = await h.createBatch(file);

    const done = await h.waitDone(b.id);
    expect(done.status).toBe('failed');
    expect(done.errors).toHaveLength(1);
    expect(done.errors![0]).toMatchObject({ code: 'internal_error', param: null, line: null });
    expect(done.errors![0]!.message).toContain(`EIO: injected ${mode} failure`);
    expect(done.failedAt).toEqual(expect.any(Number));
    expect(done.completedAt).toBeNull();
    expect(done.outputFileId).toBeNull();
    expect(done.errorFileId).toBeNull();
    expect(h.logged('shard failed').length).toBeGreaterThan(0);

    // Sending stops: a sibling shard already running on this replica hears of the failure at its
    // next heartbeat (nothing stops it locally), so no request starts later than one heartbeat after.
    const failedAt = h.events.find((e) => e.batchId === b.id && e.status === 'failed')!.at;
    await sleep(2 * h.options().heartbeatMs);
    const late = h.upstream.requests.filter((q) => q.startedAt > failedAt + h.options().heartbeatMs + 25);
    expect(late).toEqual([]);
    const sent = h.upstream.requests.length;
    await sleep(250);
    expect(h.upstream.requests).toHaveLength(sent);
    expect(h.upstream.inFlight()).toBe(0);
    expect((await h.batch(b.id)).status).toBe('failed');
    expect((await h.store.listShards(b.id)).every((s) => s.owner === null)).toBe(true);
    expect(h.blobs.composes).toEqual([]);
    expect(h.events.filter((e) => e.batchId === b.id).map((e) => e.status)).toEqual(['validating', 'in_progress', 'failed']);
  });
});
