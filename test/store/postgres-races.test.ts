import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import type { MetaStore, ShardLease } from '../../src/store/meta-store.js';
import { MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { PostgresMetaStore } from '../../src/store/postgres/postgres-meta-store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { batchFixture, fileFixture, LONG_MS, seedRunning } from './contract/index.js';

// Two store instances on one database are two replicas: each has its own pool, so their
// statements really run at once, and only the database's locking keeps them apart.

const ROUNDS = 25;
let db: TestDatabase;
let a: MetaStore;
let b: MetaStore;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});
beforeEach(async () => {
  a = await PostgresMetaStore.open(db.url, { poolSize: 8 });
  b = await PostgresMetaStore.open(db.url, { poolSize: 8 });
});
afterEach(async () => {
  await a.close();
  await b.close();
  await db.empty();
});

/** `n` calls of `fn`, alternating between the two replicas, all at once. */
const both = <T>(n: number, fn: (s: MetaStore, i: number) => Promise<T>): Promise<T[]> => Promise.all(Array.from({ length: n }, (_, i) => fn(i % 2 === 0 ? a : b, i)));

describe('PostgreSQL: two replicas at once', () => {
  it('never give one shard to both, round after round, and claim every shard', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const batch = await seedRunning(a, 6);
      const claims = await both(10, (s, i) => s.claimShard(batch.id, `r${i}`, LONG_MS));
      const got = claims.filter((c): c is ShardLease => c !== null);
      expect(got.map((c) => c.shardNo).sort(), `round ${round}`).toEqual([0, 1, 2, 3, 4, 5]);
      expect(new Set(got.map((c) => c.epoch))).toEqual(new Set([1]));
      const stored = await a.listShards(batch.id);
      for (const c of got) expect(stored[c.shardNo]?.owner).toBe(c.owner);
    }
  });

  it('never give one batch lease to both, round after round', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const batch = batchFixture();
      await a.insertBatch(batch);
      const claims = await both(6, (s, i) => s.claimBatch(batch.id, `r${i}`, LONG_MS, ['validating']));
      expect(claims.filter((c) => c !== null), `round ${round}`).toHaveLength(1);
    }
  });

  it('let exactly one release of a batch’s shards see none remaining (the one that finalizes)', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const batch = await seedRunning(a, 4);
      const leases = (await both(4, (s, i) => s.claimShard(batch.id, `r${i}`, LONG_MS))).map((l) => l!);
      const results = await both(4, (s, i) => {
        const l = leases[i]!;
        return s.releaseShard({ batchId: l.batchId, shardNo: l.shardNo, owner: l.owner!, epoch: l.epoch, completed: 10, failed: 0, usage: l.usage, outcome: 'completed' });
      });
      expect(results.every((r) => r.held)).toBe(true);
      expect(results.map((r) => r.remaining).sort(), `round ${round}`).toEqual([0, 1, 2, 3]);
    }
  });

  it('never store more bytes than maxStoredBytes, however many uploads race', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const project = `p${round}`;
      const results = await both(8, (s) => s.insertFile(fileFixture({ project, bytes: 300 }), 1000));
      expect(results.filter(Boolean), `round ${round}`).toHaveLength(3);
      expect((await a.projectUsage(project)).storedBytes).toBe(900);
    }
  });

  it('never hold more batches than maxActiveBatches, nor more requests than maxQueuedRequests', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const project = `p${round}`;
      const active = await both(8, (s) => s.insertBatch(batchFixture({ project }), { requests: 0, maxActiveBatches: 3, maxQueuedRequests: null }));
      expect(active.filter((r) => r === null), `round ${round}`).toHaveLength(3);
      expect(active.filter((r) => r === 'maxActiveBatches')).toHaveLength(5);

      const queuedProject = `q${round}`;
      const input = fileFixture({ project: queuedProject, lines: 4 });
      await a.insertFile(input);
      const queued = await both(8, (s) => s.insertBatch(batchFixture({ project: queuedProject, inputFileId: input.id }), { requests: 4, maxActiveBatches: null, maxQueuedRequests: 10 }));
      // Each batch brings 4 queued requests: two fit in 10 (the second: 4 + 4 ≤ 10; a third: 12 > 10).
      expect(queued.filter((r) => r === null), `round ${round}`).toHaveLength(2);
      expect((await a.projectUsage(queuedProject)).queuedRequests).toBe(8);
    }
  });
});

describe('PostgreSQL: replicas opening a fresh database at once', () => {
  it('apply each migration once, and all three open', async () => {
    const fresh = await createTestDatabase();
    const opening = await Promise.allSettled([0, 1, 2].map(() => PostgresMetaStore.open(fresh.url, { poolSize: 2 })));
    const stores = opening.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    try {
      expect(opening.map((o) => (o.status === 'rejected' ? String(o.reason) : 'open'))).toEqual(['open', 'open', 'open']);
      const rows = await fresh.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
      // Each works on the one schema.
      const f = fileFixture();
      await stores[0]!.insertFile(f);
      expect(await stores[2]!.getFile(f.id)).toEqual(f);
    } finally {
      for (const s of stores) await s.close();
      await fresh.drop();
    }
  });
});
