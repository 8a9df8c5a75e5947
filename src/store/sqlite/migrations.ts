import type Database from 'better-sqlite3';

export interface Migration {
  /** 1, 2, 3, … with no gaps; applied in this order, each exactly once. */
  version: number;
  name: string;
  sql: string;
}

/**
 * The schema's history. Never edit a migration that has shipped: append a new one.
 * `seq` columns give a stable insertion order for cursor pagination (AUTOINCREMENT: never reused).
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'create files and batches',
    sql: `
      CREATE TABLE files (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        id         TEXT    NOT NULL UNIQUE,
        filename   TEXT    NOT NULL,
        purpose    TEXT    NOT NULL,
        bytes      INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        blob_key   TEXT    NOT NULL,
        batch_id   TEXT
      );
      CREATE INDEX files_purpose_seq ON files (purpose, seq);

      CREATE TABLE batches (
        seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
        id                   TEXT    NOT NULL UNIQUE,
        input_file_id        TEXT    NOT NULL,
        endpoint             TEXT    NOT NULL,
        completion_window    TEXT    NOT NULL,
        status               TEXT    NOT NULL,
        model                TEXT,
        metadata             TEXT,
        errors               TEXT,
        output_file_id       TEXT,
        error_file_id        TEXT,
        created_at           INTEGER NOT NULL,
        in_progress_at       INTEGER,
        expires_at           INTEGER NOT NULL,
        finalizing_at        INTEGER,
        completed_at         INTEGER,
        failed_at            INTEGER,
        expired_at           INTEGER,
        cancelling_at        INTEGER,
        cancelled_at         INTEGER,
        request_total        INTEGER NOT NULL DEFAULT 0,
        request_completed    INTEGER NOT NULL DEFAULT 0,
        request_failed       INTEGER NOT NULL DEFAULT 0,
        input_tokens         INTEGER NOT NULL DEFAULT 0,
        cached_tokens        INTEGER NOT NULL DEFAULT 0,
        output_tokens        INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens     INTEGER NOT NULL DEFAULT 0,
        total_tokens         INTEGER NOT NULL DEFAULT 0,
        output_expires_after INTEGER
      );
      CREATE INDEX batches_status ON batches (status);
    `,
  },
  {
    version: 2,
    name: 'create analytics_minutes',
    // One row per minute (not per request): counters the analytics recorder adds to every few
    // seconds. `minute` is the unix time (seconds) of the minute's start.
    sql: `
      CREATE TABLE analytics_minutes (
        minute             INTEGER PRIMARY KEY,
        requests_completed INTEGER NOT NULL DEFAULT 0,
        requests_failed    INTEGER NOT NULL DEFAULT 0,
        retries            INTEGER NOT NULL DEFAULT 0,
        latency_ms_sum     INTEGER NOT NULL DEFAULT 0,
        input_tokens       INTEGER NOT NULL DEFAULT 0,
        output_tokens      INTEGER NOT NULL DEFAULT 0,
        batches_created    INTEGER NOT NULL DEFAULT 0,
        batches_finished   INTEGER NOT NULL DEFAULT 0,
        batch_seconds_sum  INTEGER NOT NULL DEFAULT 0,
        uploads            INTEGER NOT NULL DEFAULT 0,
        upload_bytes       INTEGER NOT NULL DEFAULT 0
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 3,
    name: 'index files by expiry',
    sql: `
      CREATE INDEX files_expires_at ON files (expires_at) WHERE expires_at IS NOT NULL;
      CREATE INDEX batches_input_file_id ON batches (input_file_id);
    `,
  },
  {
    version: 4,
    name: 'projects, api keys, per-project analytics',
    // Everything stored before keys existed belongs to the default project. `lines` is counted
    // at upload (the queued-requests quota); files from before it stay NULL (unknown).
    // Analytics minutes gain a project: the old table is copied under 'default' and dropped.
    sql: `
      ALTER TABLE files ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
      ALTER TABLE files ADD COLUMN lines INTEGER;
      ALTER TABLE batches ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
      CREATE INDEX files_project_seq ON files (project, seq);
      CREATE INDEX batches_project_seq ON batches (project, seq);

      CREATE TABLE api_keys (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        id           TEXT    NOT NULL UNIQUE,
        project      TEXT    NOT NULL,
        admin        INTEGER NOT NULL DEFAULT 0,
        name         TEXT,
        hash         TEXT    NOT NULL UNIQUE,
        prefix       TEXT    NOT NULL,
        created_at   INTEGER NOT NULL,
        revoked_at   INTEGER,
        last_used_at INTEGER
      );

      -- NULL: the server's default (BESH_PROJECT_MAX_*); 0: no limit.
      CREATE TABLE project_limits (
        project             TEXT PRIMARY KEY,
        max_stored_bytes    INTEGER,
        max_active_batches  INTEGER,
        max_queued_requests INTEGER
      ) WITHOUT ROWID;

      CREATE TABLE analytics_project_minutes (
        project            TEXT    NOT NULL,
        minute             INTEGER NOT NULL,
        requests_completed INTEGER NOT NULL DEFAULT 0,
        requests_failed    INTEGER NOT NULL DEFAULT 0,
        retries            INTEGER NOT NULL DEFAULT 0,
        latency_ms_sum     INTEGER NOT NULL DEFAULT 0,
        input_tokens       INTEGER NOT NULL DEFAULT 0,
        output_tokens      INTEGER NOT NULL DEFAULT 0,
        batches_created    INTEGER NOT NULL DEFAULT 0,
        batches_finished   INTEGER NOT NULL DEFAULT 0,
        batch_seconds_sum  INTEGER NOT NULL DEFAULT 0,
        uploads            INTEGER NOT NULL DEFAULT 0,
        upload_bytes       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (project, minute)
      ) WITHOUT ROWID;
      CREATE INDEX analytics_project_minutes_minute ON analytics_project_minutes (minute);
      INSERT INTO analytics_project_minutes
        SELECT 'default', minute, requests_completed, requests_failed, retries, latency_ms_sum, input_tokens, output_tokens,
               batches_created, batches_finished, batch_seconds_sum, uploads, upload_bytes
        FROM analytics_minutes;
      DROP TABLE analytics_minutes;
    `,
  },
  {
    version: 5,
    name: 'leases, shards, result segments, replicas, tombstones',
    // The cluster's division of work (src/store/meta-store.ts): a batch lease for validating and
    // finalizing, shard leases for running; times in ms by the store's clock. Shards and segments
    // have no foreign key to batches: they outlive a deleted batch until it is purged.
    sql: `
      ALTER TABLE batches ADD COLUMN lease_owner TEXT;
      ALTER TABLE batches ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE batches ADD COLUMN lease_expires_at INTEGER;

      CREATE TABLE batch_shards (
        batch_id         TEXT    NOT NULL,
        shard_no         INTEGER NOT NULL,
        first_line       INTEGER NOT NULL,
        requests         INTEGER NOT NULL,
        start_byte       INTEGER NOT NULL,
        end_byte         INTEGER NOT NULL,
        state            TEXT    NOT NULL DEFAULT 'pending',
        lease_owner      TEXT,
        epoch            INTEGER NOT NULL DEFAULT 0,
        lease_expires_at INTEGER,
        completed        INTEGER NOT NULL DEFAULT 0,
        failed           INTEGER NOT NULL DEFAULT 0,
        input_tokens     INTEGER NOT NULL DEFAULT 0,
        cached_tokens    INTEGER NOT NULL DEFAULT 0,
        output_tokens    INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens INTEGER NOT NULL DEFAULT 0,
        total_tokens     INTEGER NOT NULL DEFAULT 0,
        in_flight        INTEGER NOT NULL DEFAULT 0,
        outcome          TEXT,
        PRIMARY KEY (batch_id, shard_no)
      ) WITHOUT ROWID;
      CREATE INDEX batch_shards_owner ON batch_shards (lease_owner) WHERE lease_owner IS NOT NULL;

      CREATE TABLE result_segments (
        batch_id   TEXT    NOT NULL,
        kind       TEXT    NOT NULL,
        shard_no   INTEGER NOT NULL,
        epoch      INTEGER NOT NULL,
        seq        INTEGER NOT NULL,
        blob_key   TEXT    NOT NULL,
        lines      INTEGER,
        bytes      INTEGER,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (batch_id, kind, shard_no, epoch, seq)
      ) WITHOUT ROWID;

      CREATE TABLE replicas (
        id           TEXT PRIMARY KEY,
        host         TEXT    NOT NULL,
        pid          INTEGER NOT NULL,
        started_at   INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL,
        state        TEXT    NOT NULL,
        in_flight    INTEGER NOT NULL,
        worker_limit INTEGER NOT NULL,
        version      TEXT    NOT NULL
      ) WITHOUT ROWID;

      CREATE TABLE batch_tombstones (
        id         TEXT PRIMARY KEY,
        project    TEXT    NOT NULL,
        deleted_at INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 6,
    name: 'webhooks, uploads, segment registration order',
    // Issue 10: webhook endpoints and their delivery outbox (times: created_at in unix seconds, the
    // delivery schedule and leases in ms by the store's clock); uploads sent in parts; and a
    // registration order for result segments (the cursor of results read while a batch runs).
    sql: `
      CREATE TABLE webhook_endpoints (
        seq                        INTEGER PRIMARY KEY AUTOINCREMENT,
        id                         TEXT    NOT NULL UNIQUE,
        project                    TEXT    NOT NULL,
        url                        TEXT    NOT NULL,
        events                     TEXT,
        secret                     TEXT    NOT NULL,
        previous_secret            TEXT,
        previous_secret_expires_at INTEGER,
        created_at                 INTEGER NOT NULL
      );
      CREATE INDEX webhook_endpoints_project ON webhook_endpoints (project, seq);

      CREATE TABLE webhook_deliveries (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,
        id               TEXT    NOT NULL UNIQUE,
        event_id         TEXT    NOT NULL,
        endpoint_id      TEXT    NOT NULL,
        project          TEXT    NOT NULL,
        type             TEXT    NOT NULL,
        payload          TEXT    NOT NULL,
        created_at       INTEGER NOT NULL,
        status           TEXT    NOT NULL DEFAULT 'pending',
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  INTEGER NOT NULL,
        last_status      INTEGER,
        last_error       TEXT,
        delivered_at     INTEGER,
        lease_owner      TEXT,
        lease_epoch      INTEGER NOT NULL DEFAULT 0,
        lease_expires_at INTEGER
      );
      CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
      CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, seq);

      CREATE TABLE uploads (
        seq                INTEGER PRIMARY KEY AUTOINCREMENT,
        id                 TEXT    NOT NULL UNIQUE,
        project            TEXT    NOT NULL,
        filename           TEXT    NOT NULL,
        purpose            TEXT    NOT NULL,
        bytes              INTEGER NOT NULL,
        mime_type          TEXT    NOT NULL,
        created_at         INTEGER NOT NULL,
        expires_at         INTEGER NOT NULL,
        status             TEXT    NOT NULL DEFAULT 'pending',
        file_id            TEXT,
        file_expires_after INTEGER
      );
      CREATE INDEX uploads_status_expires ON uploads (status, expires_at);

      CREATE TABLE upload_parts (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        id         TEXT    NOT NULL UNIQUE,
        upload_id  TEXT    NOT NULL,
        blob_key   TEXT    NOT NULL,
        bytes      INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX upload_parts_upload ON upload_parts (upload_id, seq);

      ALTER TABLE result_segments ADD COLUMN reg_seq INTEGER;
      CREATE INDEX result_segments_reg ON result_segments (batch_id, reg_seq);
    `,
  },
  {
    version: 7,
    name: 'upload completion claim',
    // Completing an upload streams every part through the line checker, which takes a while for
    // gigabytes: the replica doing it holds a claim (ms by the store's clock, renewed while it
    // streams) so the upload neither expires nor gets completed twice meanwhile.
    sql: `
      ALTER TABLE uploads ADD COLUMN claim_token TEXT;
      ALTER TABLE uploads ADD COLUMN claim_expires_at INTEGER;
    `,
  },
  {
    version: 8,
    name: 'batch input order',
    // 'prefix': validation found that the input's lines share prompt prefixes and wrote a copy of
    // it grouped by prefix (engine/prefix-plan.ts); the shards are ranges of that copy.
    sql: `ALTER TABLE batches ADD COLUMN input_order TEXT NOT NULL DEFAULT 'file';`,
  },
];

/**
 * Applies every migration newer than the database, in order, each in its own IMMEDIATE
 * transaction (so two processes opening the same file cannot both apply one). Returns the
 * versions applied by this call. Refuses a database written by a newer BESH.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number[] {
  checkOrder(migrations);
  db.exec(`
    CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT    NOT NULL,
      applied_at INTEGER NOT NULL
    )
  `);
  const currentStmt = db.prepare<[], { v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations');
  const recordStmt = db.prepare<[number, string, number]>('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  const current = (): number => currentStmt.get()?.v ?? 0;

  const latest = migrations.at(-1)?.version ?? 0;
  if (current() > latest) {
    throw new Error(`Database schema version ${current()} is newer than this BESH supports (${latest})`);
  }

  const applied: number[] = [];
  for (const m of migrations) {
    const apply = db.transaction(() => {
      // Re-read inside the write lock: another process may have applied it meanwhile.
      if (current() >= m.version) return false;
      db.exec(m.sql);
      recordStmt.run(m.version, m.name, Math.floor(Date.now() / 1000));
      return true;
    });
    if (apply.immediate()) applied.push(m.version);
  }
  return applied;
}

function checkOrder(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`Migration #${i} has version ${m.version}, expected ${i + 1}`);
  });
}
