import { describe, expect, it } from 'vitest';

import { BATCH_STATUSES, BATCH_TRANSITIONS, type BatchRecord, type BatchStatus, nowSeconds } from '../../../src/domain/index.js';
import { useEngineHarness } from '../../helpers/engine-harness.js';

const harness = useEngineHarness();

/** The BatchRecord field stamped when a batch enters each status. */
const STAMP = {
  in_progress: 'inProgressAt',
  finalizing: 'finalizingAt',
  completed: 'completedAt',
  failed: 'failedAt',
  expired: 'expiredAt',
  cancelling: 'cancellingAt',
  cancelled: 'cancelledAt',
} as const satisfies Record<Exclude<BatchStatus, 'validating'>, keyof BatchRecord>;

describe('in-process engine: the batch state machine is enforced by the store', () => {
  it('accepts every edge of BATCH_TRANSITIONS and refuses every other (walks the whole table)', async () => {
    const h = harness();
    const { file } = await h.writeInput(1);
    const accepted: string[] = [];
    const refused: string[] = [];
    for (const from of BATCH_STATUSES) {
      for (const to of BATCH_STATUSES) {
        const b = { ...h.batchOf(file), status: from };
        expect(await h.store.insertBatch(b)).toBeNull();
        const edge = `${from}→${to}`;
        const at = nowSeconds();
        if (BATCH_TRANSITIONS[from].includes(to)) {
          const moved = await h.store.transition(b.id, [from], to, at);
          expect(moved, edge).not.toBeNull();
          expect(moved!.status, edge).toBe(to);
          // The status's own timestamp is stamped in the same write.
          if (to !== 'validating') expect(moved![STAMP[to]], edge).toBe(at);
          accepted.push(edge);
        } else {
          await expect(h.store.transition(b.id, [from], to, at), edge).rejects.toThrow(/not an edge of BATCH_TRANSITIONS/);
          // A refused edge writes nothing.
          expect((await h.batch(b.id)).status, edge).toBe(from);
          refused.push(edge);
        }
      }
    }
    const edges = Object.values(BATCH_TRANSITIONS).reduce((n, tos) => n + tos.length, 0);
    expect(accepted).toHaveLength(edges);
    expect(refused).toHaveLength(BATCH_STATUSES.length ** 2 - edges);
    // Terminal statuses have no way out; every unfinished one can fail.
    for (const s of ['completed', 'failed', 'expired', 'cancelled'] as const) expect(BATCH_TRANSITIONS[s]).toEqual([]);
  });

  it('a from-list with one illegal edge is refused whole, even when the batch is in a legal one', async () => {
    const h = harness();
    const { file } = await h.writeInput(1);
    const b = h.batchOf(file);
    await h.store.insertBatch(b);
    // validating → in_progress is an edge, completed → in_progress is not.
    await expect(h.store.transition(b.id, ['validating', 'completed'], 'in_progress', nowSeconds())).rejects.toThrow(/completed → in_progress/);
    expect((await h.batch(b.id)).status).toBe('validating');
  });

  it('a legal edge from a status the batch is not in is a lost race: null, nothing written', async () => {
    const h = harness();
    const { file } = await h.writeInput(1);
    const cases: Array<[BatchStatus, BatchStatus, BatchStatus]> = [];
    for (const actual of BATCH_STATUSES) {
      for (const from of BATCH_STATUSES) {
        if (from === actual) continue;
        for (const to of BATCH_TRANSITIONS[from]) cases.push([actual, from, to]);
      }
    }
    for (const [actual, from, to] of cases) {
      const b = { ...h.batchOf(file), status: actual };
      await h.store.insertBatch(b);
      expect(await h.store.transition(b.id, [from], to, nowSeconds()), `${actual}: ${from}→${to}`).toBeNull();
      expect((await h.batch(b.id)).status).toBe(actual);
    }
  });
});
