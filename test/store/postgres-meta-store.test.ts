import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import type { StoreEvent } from '../../src/store/meta-store.js';
import { migrate, MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { PostgresMetaStore, type PostgresStoreOptions } from '../../src/store/postgres/postgres-meta-store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { batchFixture, eventually, fileFixture, LONG_MS, metaStoreContract } from './contract/index.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

metaStoreContract(
  'PostgresMetaStore',
  async () => {
    await db.empty();
    return PostgresMetaStore.open(db.url, { poolSize: 4 });
  },
  { openPeer: () => PostgresMetaStore.open(db.url, { poolSize: 4 }) },
);

describe('PostgresMetaStore', () => {
  const opened: PostgresMetaStore[] = [];
  const open = async (opts: PostgresStoreOptions = {}): Promise<PostgresMetaStore> => {
    const s = await PostgresMetaStore.open(db.url, { poolSize: 4, ...opts });
    opened.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    await db.empty();
  });

  it('declares a shared store: several replicas, SKIP LOCKED, a cross-process feed', async () => {
    expect((await open()).capabilities).toEqual({ singleReplica: false, skipLocked: true, crossProcessFeed: true });
  });

  it('keeps data across close and reopen; seq keeps growing', async () => {
    const first = await open();
    const file = fileFixture();
    const batch = batchFixture({ inputFileId: file.id, metadata: { a: 'b' }, status: 'in_progress', requestCounts: { total: 3, completed: 1, failed: 1 } });
    await first.insertFile(file);
    await first.insertBatch(batch);
    await first.close();
    const second = await open();
    expect(await second.getFile(file.id)).toEqual(file);
    expect(await second.getBatch(batch.id)).toEqual(batch);
    const newer = fileFixture();
    await second.insertFile(newer);
    expect((await second.listFiles({ limit: 10, order: 'asc' })).data.map((f) => f.id)).toEqual([file.id, newer.id]);
  });

  it('reads every int8 as a JS number, and refuses one beyond 2^53 rather than round it', async () => {
    const s = await open();
    const f = fileFixture({ bytes: Number.MAX_SAFE_INTEGER });
    await s.insertFile(f);
    expect((await s.getFile(f.id))?.bytes).toBe(Number.MAX_SAFE_INTEGER);
    expect(await s.storedBytesByProject()).toEqual({ default: Number.MAX_SAFE_INTEGER });
    await db.query(`UPDATE files SET bytes = 9007199254740993 WHERE id = $1`, [f.id]);
    await expect(s.getFile(f.id)).rejects.toThrow(/beyond 2\^53/);
    // The store's parser is its own: pg's global one still yields strings.
    expect((await db.query<{ n: unknown }>('SELECT 1::bigint AS n'))[0]?.n).toBe('1');
  });

  it('rejects every call once closed, and leaves no connection behind', async () => {
    const s = await open({ applicationName: 'besh-closing' });
    await s.insertFile(fileFixture());
    const connections = async (): Promise<number> =>
      Number((await db.query<{ n: string }>(`SELECT COUNT(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'besh-closing%'`))[0]?.n);
    expect(await connections()).toBeGreaterThanOrEqual(2); // the pool's and the LISTEN connection
    await s.close();
    await expect(s.getFile('file-x')).rejects.toThrow();
    await eventually(async () => (await connections()) === 0, 3_000, 'the connections to close');
  });

  it('fails to open on an unreachable server', async () => {
    const url = new URL(db.url);
    url.port = '1';
    await expect(PostgresMetaStore.open(url.href)).rejects.toThrow();
  });

  it('the change feed reconnects after its connection is lost, and says `work` (events meanwhile are lost)', async () => {
    const errors: Error[] = [];
    const s = await open({ applicationName: 'besh-feed', onError: (e) => errors.push(e) });
    const writer = await open();
    const events: StoreEvent[] = [];
    s.subscribe((e) => events.push(e));
    const killed = await db.query<{ ok: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'besh-feed-listen'`,
    );
    expect(killed).toEqual([{ ok: true }]);
    await eventually(() => events.some((e) => e.type === 'work'), 5_000, 'the work event after reconnecting');
    expect(errors.length).toBeGreaterThan(0);
    const b = batchFixture();
    await writer.insertBatch(b);
    await eventually(() => events.some((e) => e.type === 'batch' && e.id === b.id), 3_000, 'an event after reconnecting');
    // Its writes never depended on the feed.
    expect(await s.getBatch(b.id)).toEqual(b);
  });

  it('notifies `work` when a batch lease is given back (the batch may be claimed again)', async () => {
    const s = await open();
    const b = batchFixture();
    await s.insertBatch(b);
    const lease = (await s.claimBatch(b.id, 'r1', LONG_MS, ['validating']))!;
    const events: StoreEvent[] = [];
    s.subscribe((e) => events.push(e));
    await s.releaseBatch({ batchId: b.id, owner: 'r1', epoch: lease.epoch });
    await eventually(() => events.some((e) => e.type === 'work'), 3_000, 'work');
  });
});

describe('PostgreSQL migrations', () => {
  let fresh: TestDatabase;
  let pool: pg.Pool;
  beforeAll(async () => {
    fresh = await createTestDatabase();
    pool = new pg.Pool({ connectionString: fresh.url, max: 2 });
  });
  afterAll(async () => {
    await pool.end();
    await fresh.drop();
  });

  it('applies each migration once, in order, recorded, however often it runs', async () => {
    expect(await migrate(pool)).toEqual(MIGRATIONS.map((m) => m.version));
    expect(await migrate(pool)).toEqual([]);
    const rows = await fresh.query<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version');
    expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    const tables = (await fresh.query<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)).map((r) => r.t);
    expect(tables).toEqual([
      'analytics_project_minutes',
      'api_keys',
      'batch_shards',
      'batch_tombstones',
      'batches',
      'files',
      'project_limits',
      'replicas',
      'result_segments',
      'schema_migrations',
      'upload_parts',
      'uploads',
      'webhook_deliveries',
      'webhook_endpoints',
    ]);
  });

  it('applies a new migration once, and rolls a failing one back entirely', async () => {
    const next = MIGRATIONS.length + 1;
    const extra = [...MIGRATIONS, { version: next, name: 'add t', sql: 'CREATE TABLE t (x INTEGER)' }];
    expect(await migrate(pool, extra)).toEqual([next]);
    expect(await migrate(pool, extra)).toEqual([]);
    const broken = [...extra, { version: next + 1, name: 'broken', sql: 'CREATE TABLE u (x INTEGER); THIS IS NOT SQL;' }];
    await expect(migrate(pool, broken)).rejects.toThrow();
    expect(await fresh.query(`SELECT 1 FROM pg_tables WHERE tablename = 'u'`)).toEqual([]);
    expect((await fresh.query<{ v: number }>('SELECT MAX(version) AS v FROM schema_migrations'))[0]?.v).toBe(next);
    // The failed run freed its lock: the next one is not blocked.
    expect(await migrate(pool, extra)).toEqual([]);
  });

  it('refuses a database from a newer schema, and a history with a gap', async () => {
    await fresh.query(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)`);
    await expect(PostgresMetaStore.open(fresh.url)).rejects.toThrow(/newer/);
    await expect(migrate(pool, [{ version: 2, name: 'gap', sql: '' }])).rejects.toThrow(/expected 1/);
  });
});
