import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { segmentKey } from '../../src/store/blob-keys.js';
import type { MetaStore, NewSegment, ShardFence, ShardLease } from '../../src/store/meta-store.js';
import { PostgresMetaStore } from '../../src/store/postgres/postgres-meta-store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { LONG_MS, PAST_SHORT_MS, replicaFixture, seedRunning, SHORT_MS, sleep } from './contract/index.js';

// Fencing across replicas: once a shard is taken over, nothing the old holder writes may land,
// and no segment of the old epoch may commit unseen by the new holder (cluster-store-spec.md,
// `addSegment`: the shard row is locked FOR SHARE by every segment write).

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
  a = await PostgresMetaStore.open(db.url, { poolSize: 4 });
  b = await PostgresMetaStore.open(db.url, { poolSize: 4 });
});
afterEach(async () => {
  await a.close();
  await b.close();
  await db.empty();
});

const fenceOf = (s: ShardLease): ShardFence => ({ batchId: s.batchId, shardNo: s.shardNo, owner: s.owner!, epoch: s.epoch });
const seg = (f: ShardFence, seq: number): NewSegment => ({ kind: 'output', seq, blobKey: segmentKey(f.batchId, 'output', f.shardNo, f.epoch, seq), lines: null, bytes: null });

/** A raw connection to hold row locks the way another replica's transaction would. */
async function rawClient(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  return c;
}

/** Whether `p` is still pending after `ms`. */
async function pendingAfter(p: Promise<unknown>, ms: number): Promise<boolean> {
  const pending = Symbol('pending');
  return (await Promise.race([p.then(() => null, () => null), sleep(ms).then(() => pending)])) === pending;
}

describe('PostgreSQL: fencing across replicas', () => {
  it('after a takeover, the old holder can neither register, seal, renew nor release; the new one sees and seals its segments', async () => {
    const batch = await seedRunning(a, 1);
    const old = (await a.claimShard(batch.id, 'ra', SHORT_MS))!;
    expect(await a.addSegment(fenceOf(old), seg(fenceOf(old), 0))).toBe(true);
    await sleep(PAST_SHORT_MS);
    const next = (await b.claimShard(batch.id, 'rb', LONG_MS))!;
    expect(next.epoch).toBe(old.epoch + 1);

    expect(await a.addSegment(fenceOf(old), seg(fenceOf(old), 1))).toBe(false);
    expect(await a.sealSegment(fenceOf(old), seg(fenceOf(old), 0).blobKey, 1, 10)).toBe(false);
    const hb = await a.heartbeat({ replica: replicaFixture('ra'), leaseMs: LONG_MS, batches: [], shards: [{ ...fenceOf(old), completed: 5, failed: 0, usage: old.usage, inFlight: 1 }] });
    expect(hb.shards[0]?.held).toBe(false);
    expect(await a.releaseShard({ ...fenceOf(old), completed: 5, failed: 0, usage: old.usage, outcome: 'completed' })).toEqual({ held: false, remaining: 1 });

    expect((await b.listSegments(batch.id)).map((s) => [s.epoch, s.seq])).toEqual([[old.epoch, 0]]);
    expect(await b.sealSegment(fenceOf(next), seg(fenceOf(old), 0).blobKey, 3, 30)).toBe(true);
    expect(await b.addSegment(fenceOf(next), seg(fenceOf(next), 0))).toBe(true);
    expect((await b.listShards(batch.id))[0]).toMatchObject({ owner: 'rb', epoch: next.epoch, state: 'leased', completed: 0 });
  });

  it('a segment write waits for a claim in flight, then sees the new epoch and is refused', async () => {
    const batch = await seedRunning(a, 1);
    const old = (await a.claimShard(batch.id, 'ra', SHORT_MS))!;
    await sleep(PAST_SHORT_MS);
    const raw = await rawClient();
    try {
      // Another replica's claim, not committed yet.
      await raw.query('BEGIN');
      await raw.query(`UPDATE batch_shards SET lease_owner = 'rb', epoch = epoch + 1, lease_expires_at = lease_expires_at + 600000 WHERE batch_id = $1 AND shard_no = 0`, [batch.id]);
      const write = a.addSegment(fenceOf(old), seg(fenceOf(old), 0));
      expect(await pendingAfter(write, 200)).toBe(true);
      await raw.query('COMMIT');
      expect(await write).toBe(false);
      expect(await b.listSegments(batch.id)).toEqual([]);
    } finally {
      await raw.end();
    }
  });

  it('a claim passes over a shard whose segment write is in flight (SKIP LOCKED), and takes it once that committed', async () => {
    const batch = await seedRunning(a, 1);
    const old = (await a.claimShard(batch.id, 'ra', SHORT_MS))!;
    await sleep(PAST_SHORT_MS);
    const raw = await rawClient();
    try {
      // The lock a segment write holds until it commits.
      await raw.query('BEGIN');
      await raw.query('SELECT 1 FROM batch_shards WHERE batch_id = $1 AND shard_no = 0 FOR SHARE', [batch.id]);
      const started = Date.now();
      expect(await b.claimShard(batch.id, 'rb', LONG_MS)).toBeNull();
      expect(Date.now() - started).toBeLessThan(1_000); // skipped, not waited for
      await raw.query('COMMIT');
      expect((await b.claimShard(batch.id, 'rb', LONG_MS))?.epoch).toBe(old.epoch + 1);
    } finally {
      await raw.end();
    }
  });

  it('a racing old-holder segment and new-holder claim never leave an old-epoch segment the new holder did not see', async () => {
    for (let round = 0; round < 20; round++) {
      const batch = await seedRunning(a, 1);
      const old = (await a.claimShard(batch.id, 'ra', 1))!;
      await sleep(5);
      const [added, claim] = await Promise.all([
        a.addSegment(fenceOf(old), seg(fenceOf(old), round)),
        b.claimShard(batch.id, 'rb', LONG_MS).then(async (lease) => ({ lease, listed: lease === null ? [] : await b.listSegments(batch.id) })),
      ]);
      const all = await b.listSegments(batch.id);
      if (claim.lease !== null) {
        // Whatever of the old epoch committed, the new holder listed it right after its claim.
        expect(claim.listed, `round ${round}`).toEqual(all.filter((s) => s.epoch === old.epoch));
      }
      expect(all.length, `round ${round}`).toBe(added ? 1 : 0);
    }
  });
});
