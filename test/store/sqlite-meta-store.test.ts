import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { migrate, MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { SqliteMetaStore } from '../../src/store/sqlite/sqlite-meta-store.js';
import { batchFixture, fileFixture, metaStoreContract } from './contract/index.js';

const root = mkdtempSync(join(tmpdir(), 'besh-sqlite-'));
let counter = 0;
const freshPath = (): string => join(root, `db-${++counter}`, 'besh.sqlite');

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

let lastPath = '';
metaStoreContract(
  'SqliteMetaStore',
  () => {
    lastPath = freshPath();
    return Promise.resolve(SqliteMetaStore.open(lastPath));
  },
  { openPeer: () => Promise.resolve(SqliteMetaStore.open(lastPath)) },
);

describe('SqliteMetaStore', () => {
  const opened: SqliteMetaStore[] = [];
  const open = (path: string): SqliteMetaStore => {
    const store = SqliteMetaStore.open(path);
    opened.push(store);
    return store;
  };
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
  });

  it('creates the parent directory and uses WAL', () => {
    const path = join(root, 'nested', 'deeper', 'meta.sqlite');
    open(path);
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      raw.close();
    }
  });

  it('keeps data across close and reopen', async () => {
    const path = freshPath();
    const first = open(path);
    const file = fileFixture();
    const batch = batchFixture({ inputFileId: file.id, metadata: { a: 'b' }, status: 'in_progress', inProgressAt: 5, requestCounts: { total: 3, completed: 1, failed: 1 } });
    await first.insertFile(file);
    await first.insertBatch(batch);
    await first.close();

    const second = open(path);
    expect(await second.getFile(file.id)).toEqual(file);
    expect(await second.getBatch(batch.id)).toEqual(batch);
    expect(await second.isInputOfUnfinishedBatch(file.id)).toBe(true);

    // seq keeps growing after reopen: newer rows still list after older ones.
    const newer = fileFixture();
    await second.insertFile(newer);
    expect((await second.listFiles({ limit: 10, order: 'asc' })).data.map((f) => f.id)).toEqual([file.id, newer.id]);
  });

  it('applies migrations once, however often the database is reopened', async () => {
    const path = freshPath();
    for (let i = 0; i < 3; i++) await open(path).close();
    const raw = new Database(path);
    try {
      const rows = raw.prepare<[], { version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version').all();
      expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
      expect(migrate(raw)).toEqual([]);
      const tables = raw.prepare<[], string>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
      expect(tables).toEqual(expect.arrayContaining(['batches', 'files', 'schema_migrations']));
      const indexes = raw.prepare<[], string>("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name").pluck().all();
      expect(indexes).toEqual([
        'analytics_project_minutes_minute',
        'batch_shards_owner',
        'batches_input_file_id',
        'batches_project_seq',
        'batches_status',
        'files_expires_at',
        'files_project_seq',
        'files_purpose_seq',
        'result_segments_reg',
        'upload_parts_upload',
        'uploads_status_expires',
        'webhook_deliveries_due',
        'webhook_deliveries_endpoint',
        'webhook_endpoints_project',
      ]);
    } finally {
      raw.close();
    }
  });

  it('moves data from before projects into the default project (files, batches, analytics minutes)', () => {
    const raw = new Database(':memory:');
    try {
      migrate(raw, MIGRATIONS.slice(0, 3));
      raw.exec(`INSERT INTO files (id, filename, purpose, bytes, created_at, blob_key) VALUES ('file-old', 'a.jsonl', 'batch', 10, 1, 'files/file-old.jsonl')`);
      raw.exec(`INSERT INTO batches (id, input_file_id, endpoint, completion_window, status, created_at, expires_at)
                VALUES ('batch_old', 'file-old', '/v1/chat/completions', '24h', 'completed', 1, 2)`);
      raw.exec('INSERT INTO analytics_minutes (minute, requests_completed) VALUES (60, 7)');
      expect(migrate(raw)).toEqual(MIGRATIONS.slice(3).map((m) => m.version));
      expect(raw.prepare('SELECT project, lines FROM files').get()).toEqual({ project: 'default', lines: null });
      expect(raw.prepare('SELECT project FROM batches').pluck().get()).toBe('default');
      expect(raw.prepare('SELECT project, minute, requests_completed FROM analytics_project_minutes').get()).toEqual({ project: 'default', minute: 60, requests_completed: 7 });
    } finally {
      raw.close();
    }
  });

  it('applies new migrations in order, each recorded', () => {
    const raw = new Database(':memory:');
    try {
      expect(migrate(raw)).toEqual(MIGRATIONS.map((m) => m.version));
      const next = MIGRATIONS.length + 1;
      const extra = [...MIGRATIONS, { version: next, name: 'add t', sql: 'CREATE TABLE t (x INTEGER)' }];
      expect(migrate(raw, extra)).toEqual([next]);
      expect(migrate(raw, extra)).toEqual([]);
      expect(raw.prepare('SELECT COUNT(*) FROM schema_migrations').pluck().get()).toBe(next);
    } finally {
      raw.close();
    }
  });

  it('rolls back a failing migration entirely', () => {
    const raw = new Database(':memory:');
    try {
      migrate(raw);
      const next = MIGRATIONS.length + 1;
      const broken = [...MIGRATIONS, { version: next, name: 'broken', sql: 'CREATE TABLE u (x INTEGER); THIS IS NOT SQL;' }];
      expect(() => migrate(raw, broken)).toThrow();
      expect(raw.prepare("SELECT COUNT(*) FROM sqlite_master WHERE name = 'u'").pluck().get()).toBe(0);
      expect(raw.prepare('SELECT MAX(version) FROM schema_migrations').pluck().get()).toBe(MIGRATIONS.length);
    } finally {
      raw.close();
    }
  });

  it('refuses a database from a newer schema', () => {
    const path = freshPath();
    open(path);
    const raw = new Database(path);
    raw.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(999, 'future', 0);
    raw.close();
    expect(() => SqliteMetaStore.open(path)).toThrow(/newer/);
  });

  it('rejects (does not throw) once closed', async () => {
    const store = open(freshPath());
    await store.close();
    const pending = store.getFile('file-x');
    expect(pending).toBeInstanceOf(Promise);
    await expect(pending).rejects.toThrow();
  });

  it('sees writes of another connection to the same file', async () => {
    const path = freshPath();
    const a = open(path);
    const b = open(path);
    const batch = batchFixture({ status: 'in_progress' });
    await a.insertBatch(batch);
    expect(await b.transition(batch.id, ['in_progress'], 'cancelling', 10)).not.toBeNull();
    expect(await a.transition(batch.id, ['in_progress'], 'finalizing', 11)).toBeNull();
    expect((await a.getBatch(batch.id))?.status).toBe('cancelling');
  });
});
