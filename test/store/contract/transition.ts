import { describe, expect, it } from 'vitest';

import { BATCH_STATUSES, BATCH_TRANSITIONS, type BatchRecord, type BatchStatus, canTransition, newFileId } from '../../../src/domain/index.js';
import type { ContractContext } from './context.js';
import { batchFixture, fileFixture, ids, LONG_MS, PAST_SHORT_MS, shardPlans, SHORT_MS, sleep, T0 } from './fixtures.js';

/** Which BatchRecord field `transition` stamps for each target status. */
const STAMP: Record<BatchStatus, keyof BatchRecord | null> = {
  validating: null,
  in_progress: 'inProgressAt',
  finalizing: 'finalizingAt',
  completed: 'completedAt',
  failed: 'failedAt',
  expired: 'expiredAt',
  cancelling: 'cancellingAt',
  cancelled: 'cancelledAt',
};
const STAMP_FIELDS = Object.values(STAMP).filter((f): f is keyof BatchRecord => f !== null);

export function transitionContract(t: ContractContext): void {
  describe('transition', () => {
    it('moves the batch, stamps the timestamp, sets the fields and returns the stored record', async () => {
      const b = batchFixture({ status: 'validating' });
      await t.store.insertBatch(b);
      const moved = await t.store.transition(b.id, ['validating'], 'in_progress', T0 + 5, { model: 'm1', requestCounts: { total: 3, completed: 0, failed: 0 } });
      const expected: BatchRecord = { ...b, status: 'in_progress', inProgressAt: T0 + 5, model: 'm1', requestCounts: { total: 3, completed: 0, failed: 0 } };
      expect(moved).toEqual(expected);
      expect(await t.store.getBatch(b.id)).toEqual(expected);
    });

    for (const to of BATCH_STATUSES) {
      const from = BATCH_STATUSES.find((f) => canTransition(f, to));
      if (from === undefined) continue; // validating: no edge leads there
      it(`stamps only ${STAMP[to] ?? 'no timestamp'} when moving ${from} → ${to}`, async () => {
        const b = batchFixture({ status: from });
        await t.store.insertBatch(b);
        const moved = await t.store.transition(b.id, [from], to, T0 + 42);
        expect(moved?.status).toBe(to);
        for (const field of STAMP_FIELDS) expect(moved?.[field], field).toBe(field === STAMP[to] ? T0 + 42 : null);
        expect({ ...moved, status: b.status }).toEqual({ ...b, ...(STAMP[to] ? { [STAMP[to]]: T0 + 42 } : {}) });
      });
    }

    it('throws on every from → to that is not an edge of BATCH_TRANSITIONS, changing nothing', async () => {
      const batches = new Map<BatchStatus, BatchRecord>();
      for (const s of BATCH_STATUSES) {
        const b = batchFixture({ status: s });
        await t.store.insertBatch(b);
        batches.set(s, b);
      }
      let refused = 0;
      for (const from of BATCH_STATUSES) {
        for (const to of BATCH_STATUSES) {
          if (BATCH_TRANSITIONS[from].includes(to)) continue;
          await expect(t.store.transition(batches.get(from)!.id, [from], to, T0 + 9), `${from} → ${to}`).rejects.toThrow(/BATCH_TRANSITIONS/);
          refused++;
        }
      }
      expect(refused).toBe(64 - 15);
      // One bad edge among good ones is still a programming error.
      await expect(t.store.transition(batches.get('in_progress')!.id, ['validating', 'completed'], 'failed', T0 + 9)).rejects.toThrow(/BATCH_TRANSITIONS/);
      for (const b of batches.values()) expect(await t.store.getBatch(b.id)).toEqual(b);
    });

    it('accepts any of several from statuses', async () => {
      const b = batchFixture({ status: 'finalizing' });
      await t.store.insertBatch(b);
      const moved = await t.store.transition(b.id, ['validating', 'in_progress', 'finalizing'], 'cancelling', T0 + 1);
      expect(moved?.status).toBe('cancelling');
      expect(moved?.cancellingAt).toBe(T0 + 1);
    });

    it('returns null and changes nothing when the status is not in from', async () => {
      const b = batchFixture({ status: 'completed', completedAt: T0 + 9 });
      await t.store.insertBatch(b);
      const output = fileFixture({ purpose: 'batch_output', batchId: b.id });
      const result = await t.store.transition(b.id, ['validating', 'in_progress'], 'cancelling', T0 + 20, {
        errors: [{ code: 'x', message: 'y', param: null, line: null }],
        model: 'm',
        insertFiles: [output],
        insertShards: shardPlans(2),
      });
      expect(result).toBeNull();
      expect(await t.store.getBatch(b.id)).toEqual(b);
      expect(await t.store.getFile(output.id)).toBeNull();
      expect(await t.store.listShards(b.id)).toEqual([]);
    });

    it('returns null for an unknown batch or an empty from', async () => {
      expect(await t.store.transition('batch_unknown', ['validating'], 'failed', T0)).toBeNull();
      const b = batchFixture();
      await t.store.insertBatch(b);
      expect(await t.store.transition(b.id, [], 'failed', T0)).toBeNull();
      expect(await t.store.getBatch(b.id)).toEqual(b);
    });

    it('lets exactly one of two racing transitions win', async () => {
      const b = batchFixture({ status: 'in_progress', inProgressAt: T0 });
      await t.store.insertBatch(b);
      const [x, y] = await Promise.all([
        t.store.transition(b.id, ['in_progress'], 'finalizing', T0 + 1),
        t.store.transition(b.id, ['in_progress', 'validating'], 'cancelling', T0 + 2),
      ]);
      expect([x, y].filter((r) => r !== null)).toHaveLength(1);
      expect((await t.store.getBatch(b.id))?.status).toBe((x ?? y)?.status);
      // And the loser's retry from the old status still fails.
      expect(await t.store.transition(b.id, ['in_progress'], 'finalizing', T0 + 3)).toBeNull();
    });

    it('leaves fields that are not given untouched and clears fields given as null', async () => {
      const b = batchFixture({
        status: 'in_progress',
        inProgressAt: T0,
        model: 'm0',
        errors: [{ code: 'e', message: 'm', param: null, line: 1 }],
        outputFileId: 'file-out',
        errorFileId: 'file-err',
        requestCounts: { total: 5, completed: 2, failed: 1 },
        usage: { inputTokens: 1, cachedTokens: 2, outputTokens: 3, reasoningTokens: 4, totalTokens: 5 },
      });
      await t.store.insertBatch(b);
      const untouched = await t.store.transition(b.id, ['in_progress'], 'finalizing', T0 + 1, {});
      expect(untouched).toEqual({ ...b, status: 'finalizing', finalizingAt: T0 + 1 });

      const cleared = await t.store.transition(b.id, ['finalizing'], 'failed', T0 + 2, { model: null, errors: null, outputFileId: null, errorFileId: null });
      expect(cleared).toEqual({ ...b, status: 'failed', finalizingAt: T0 + 1, failedAt: T0 + 2, model: null, errors: null, outputFileId: null, errorFileId: null });
    });

    it('sets errors, output/error files, counts and usage', async () => {
      const b = batchFixture({ status: 'finalizing' });
      await t.store.insertBatch(b);
      const fields = {
        errors: [{ code: 'batch_expired', message: 'late', param: null, line: 7 }],
        outputFileId: newFileId(),
        errorFileId: newFileId(),
        requestCounts: { total: 9, completed: 8, failed: 1 },
        usage: { inputTokens: 10, cachedTokens: 1, outputTokens: 20, reasoningTokens: 2, totalTokens: 30 },
      };
      const moved = await t.store.transition(b.id, ['finalizing'], 'completed', T0 + 3, fields);
      expect(moved).toEqual({ ...b, ...fields, status: 'completed', completedAt: T0 + 3 });
      expect(await t.store.getBatch(b.id)).toEqual(moved);
    });

    it('inserts insertFiles in the same write', async () => {
      const b = batchFixture({ status: 'finalizing' });
      await t.store.insertBatch(b);
      const output = fileFixture({ purpose: 'batch_output', batchId: b.id, filename: 'batch_output.jsonl', expiresAt: T0 + 100 });
      const errorFile = fileFixture({ purpose: 'batch_output', batchId: b.id, filename: 'batch_errors.jsonl' });
      const moved = await t.store.transition(b.id, ['finalizing'], 'completed', T0 + 4, { outputFileId: output.id, errorFileId: errorFile.id, insertFiles: [output, errorFile] });
      expect(moved?.outputFileId).toBe(output.id);
      expect(await t.store.getFile(output.id)).toEqual(output);
      expect(await t.store.getFile(errorFile.id)).toEqual(errorFile);
      expect(ids((await t.store.listFiles({ limit: 10, order: 'asc', purpose: 'batch_output' })).data)).toEqual([output.id, errorFile.id]);
    });

    it('applies nothing when inserting a file fails', async () => {
      const b = batchFixture({ status: 'finalizing' });
      await t.store.insertBatch(b);
      const existing = fileFixture();
      await t.store.insertFile(existing);
      const fresh = fileFixture({ purpose: 'batch_output', batchId: b.id });
      await expect(t.store.transition(b.id, ['finalizing'], 'completed', T0 + 4, { outputFileId: fresh.id, insertFiles: [fresh, { ...existing }] })).rejects.toThrow();
      expect(await t.store.getBatch(b.id)).toEqual(b);
      expect(await t.store.getFile(fresh.id)).toBeNull();
      expect(await t.store.getFile(existing.id)).toEqual(existing);
    });

    it('creates insertShards in the same write: pending, epoch 0, no owner, zero counters', async () => {
      const b = batchFixture();
      await t.store.insertBatch(b);
      const plans = shardPlans(3, 4);
      await t.store.transition(b.id, ['validating'], 'in_progress', T0 + 1, { requestCounts: { total: 12, completed: 0, failed: 0 }, insertShards: plans });
      const shards = await t.store.listShards(b.id);
      expect(shards).toEqual(
        plans.map((p) => ({
          ...p,
          batchId: b.id,
          state: 'pending',
          owner: null,
          epoch: 0,
          leaseExpiresAt: null,
          completed: 0,
          failed: 0,
          usage: { inputTokens: 0, cachedTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0 },
          inFlight: 0,
          outcome: null,
        })),
      );
      expect(await t.store.listShards('batch_unknown')).toEqual([]);
    });

    it('with a fence, moves the batch only while that batch lease is held (its epoch; expiry alone does not matter)', async () => {
      const b = batchFixture();
      await t.store.insertBatch(b);
      const first = (await t.store.claimBatch(b.id, 'r1', SHORT_MS, ['validating']))!;
      const fence1 = { batchId: b.id, owner: 'r1', epoch: first.epoch };
      await sleep(PAST_SHORT_MS);
      // Expired but not taken over: the epoch still fences.
      expect(await t.store.transition(b.id, ['validating'], 'in_progress', T0 + 1, {}, fence1)).not.toBeNull();
      // Taken over: the old holder's write is refused and changes nothing.
      const second = (await t.store.claimBatch(b.id, 'r2', LONG_MS, ['in_progress']))!;
      expect(second.epoch).toBe(first.epoch + 1);
      const before = await t.store.getBatch(b.id);
      expect(await t.store.transition(b.id, ['in_progress'], 'failed', T0 + 2, { model: 'stale' }, fence1)).toBeNull();
      expect(await t.store.transition(b.id, ['in_progress'], 'failed', T0 + 2, {}, { ...fence1, epoch: second.epoch, owner: 'r1' })).toBeNull();
      expect(await t.store.getBatch(b.id)).toEqual(before);
      expect(await t.store.transition(b.id, ['in_progress'], 'finalizing', T0 + 3, {}, { batchId: b.id, owner: 'r2', epoch: second.epoch })).not.toBeNull();
    });

    it('releaseLease frees the batch lease in the same write', async () => {
      const b = batchFixture();
      await t.store.insertBatch(b);
      const lease = (await t.store.claimBatch(b.id, 'r1', LONG_MS, ['validating']))!;
      const fence = { batchId: b.id, owner: 'r1', epoch: lease.epoch };
      await t.store.transition(b.id, ['validating'], 'in_progress', T0 + 1, { insertShards: shardPlans(1), releaseLease: true }, fence);
      expect(await t.store.releaseBatch(fence)).toBe(false);
      const next = await t.store.claimBatch(b.id, 'r2', LONG_MS, ['in_progress']);
      expect(next?.epoch).toBe(lease.epoch + 1);
      // Without releaseLease the lease stays.
      await t.store.transition(b.id, ['in_progress'], 'finalizing', T0 + 2, {}, { batchId: b.id, owner: 'r2', epoch: next!.epoch });
      expect(await t.store.claimBatch(b.id, 'r3', LONG_MS, ['finalizing'])).toBeNull();
    });
  });
}
