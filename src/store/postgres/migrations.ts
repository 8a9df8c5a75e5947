import type pg from 'pg';

export interface Migration {
  /** 1, 2, 3, … with no gaps; applied in this order, each exactly once. */
  version: number;
  name: string;
  sql: string;
}

/**
 * The schema's history. Never edit a migration that has shipped: append a new one. Version 1 is
 * the cumulative schema of SQLite's migrations 1–5 (PostgreSQL came later, so it has no older
 * history to replay). Integers that hold bytes, tokens, counts or times are BIGINT (parsed to JS
 * numbers, all below 2^53); flags stay 0/1 integers so `src/store/sql/rows.ts` maps both dialects.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'files, batches, analytics, projects, api keys, leases, shards, segments, replicas, tombstones',
    sql: `
      CREATE TABLE files (
        seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id         TEXT   NOT NULL UNIQUE,
        filename   TEXT   NOT NULL,
        purpose    TEXT   NOT NULL,
        bytes      BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        blob_key   TEXT   NOT NULL,
        batch_id   TEXT,
        project    TEXT   NOT NULL DEFAULT 'default',
        lines      BIGINT
      );
      CREATE INDEX files_purpose_seq ON files (purpose, seq);
      CREATE INDEX files_project_seq ON files (project, seq);
      CREATE INDEX files_expires_at ON files (expires_at) WHERE expires_at IS NOT NULL;

      CREATE TABLE batches (
        seq                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id                   TEXT    NOT NULL UNIQUE,
        project              TEXT    NOT NULL DEFAULT 'default',
        input_file_id        TEXT    NOT NULL,
        endpoint             TEXT    NOT NULL,
        completion_window    TEXT    NOT NULL,
        status               TEXT    NOT NULL,
        model                TEXT,
        metadata             TEXT,
        errors               TEXT,
        output_file_id       TEXT,
        error_file_id        TEXT,
        created_at           BIGINT  NOT NULL,
        in_progress_at       BIGINT,
        expires_at           BIGINT  NOT NULL,
        finalizing_at        BIGINT,
        completed_at         BIGINT,
        failed_at            BIGINT,
        expired_at           BIGINT,
        cancelling_at        BIGINT,
        cancelled_at         BIGINT,
        request_total        BIGINT  NOT NULL DEFAULT 0,
        request_completed    BIGINT  NOT NULL DEFAULT 0,
        request_failed       BIGINT  NOT NULL DEFAULT 0,
        input_tokens         BIGINT  NOT NULL DEFAULT 0,
        cached_tokens        BIGINT  NOT NULL DEFAULT 0,
        output_tokens        BIGINT  NOT NULL DEFAULT 0,
        reasoning_tokens     BIGINT  NOT NULL DEFAULT 0,
        total_tokens         BIGINT  NOT NULL DEFAULT 0,
        output_expires_after BIGINT,
        lease_owner          TEXT,
        lease_epoch          INTEGER NOT NULL DEFAULT 0,
        lease_expires_at     BIGINT
      );
      CREATE INDEX batches_status ON batches (status);
      CREATE INDEX batches_input_file_id ON batches (input_file_id);
      CREATE INDEX batches_project_seq ON batches (project, seq);
      CREATE INDEX batches_lease_owner ON batches (lease_owner) WHERE lease_owner IS NOT NULL;

      -- One row per minute and project (not per request), added to every few seconds.
      CREATE TABLE analytics_project_minutes (
        project            TEXT   NOT NULL,
        minute             BIGINT NOT NULL,
        requests_completed BIGINT NOT NULL DEFAULT 0,
        requests_failed    BIGINT NOT NULL DEFAULT 0,
        retries            BIGINT NOT NULL DEFAULT 0,
        latency_ms_sum     BIGINT NOT NULL DEFAULT 0,
        input_tokens       BIGINT NOT NULL DEFAULT 0,
        output_tokens      BIGINT NOT NULL DEFAULT 0,
        batches_created    BIGINT NOT NULL DEFAULT 0,
        batches_finished   BIGINT NOT NULL DEFAULT 0,
        batch_seconds_sum  BIGINT NOT NULL DEFAULT 0,
        uploads            BIGINT NOT NULL DEFAULT 0,
        upload_bytes       BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (project, minute)
      );
      CREATE INDEX analytics_project_minutes_minute ON analytics_project_minutes (minute);

      CREATE TABLE api_keys (
        seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id           TEXT    NOT NULL UNIQUE,
        project      TEXT    NOT NULL,
        admin        INTEGER NOT NULL DEFAULT 0,
        name         TEXT,
        hash         TEXT    NOT NULL UNIQUE,
        prefix       TEXT    NOT NULL,
        created_at   BIGINT  NOT NULL,
        revoked_at   BIGINT,
        last_used_at BIGINT
      );

      -- NULL: the server's default (BESH_PROJECT_MAX_*); 0: no limit.
      CREATE TABLE project_limits (
        project             TEXT PRIMARY KEY,
        max_stored_bytes    BIGINT,
        max_active_batches  BIGINT,
        max_queued_requests BIGINT
      );

      -- No foreign key to batches: shards and segments outlive a deleted batch until it is purged.
      CREATE TABLE batch_shards (
        batch_id         TEXT    NOT NULL,
        shard_no         INTEGER NOT NULL,
        first_line       BIGINT  NOT NULL,
        requests         BIGINT  NOT NULL,
        start_byte       BIGINT  NOT NULL,
        end_byte         BIGINT  NOT NULL,
        state            TEXT    NOT NULL DEFAULT 'pending',
        lease_owner      TEXT,
        epoch            INTEGER NOT NULL DEFAULT 0,
        lease_expires_at BIGINT,
        completed        BIGINT  NOT NULL DEFAULT 0,
        failed           BIGINT  NOT NULL DEFAULT 0,
        input_tokens     BIGINT  NOT NULL DEFAULT 0,
        cached_tokens    BIGINT  NOT NULL DEFAULT 0,
        output_tokens    BIGINT  NOT NULL DEFAULT 0,
        reasoning_tokens BIGINT  NOT NULL DEFAULT 0,
        total_tokens     BIGINT  NOT NULL DEFAULT 0,
        in_flight        INTEGER NOT NULL DEFAULT 0,
        outcome          TEXT,
        PRIMARY KEY (batch_id, shard_no)
      );
      CREATE INDEX batch_shards_owner ON batch_shards (lease_owner) WHERE lease_owner IS NOT NULL;

      CREATE TABLE result_segments (
        batch_id   TEXT    NOT NULL,
        kind       TEXT    NOT NULL,
        shard_no   INTEGER NOT NULL,
        epoch      INTEGER NOT NULL,
        seq        INTEGER NOT NULL,
        blob_key   TEXT    NOT NULL,
        lines      BIGINT,
        bytes      BIGINT,
        created_at BIGINT  NOT NULL,
        PRIMARY KEY (batch_id, kind, shard_no, epoch, seq)
      );

      CREATE TABLE replicas (
        id           TEXT    PRIMARY KEY,
        host         TEXT    NOT NULL,
        pid          INTEGER NOT NULL,
        started_at   BIGINT  NOT NULL,
        heartbeat_at BIGINT  NOT NULL,
        state        TEXT    NOT NULL,
        in_flight    INTEGER NOT NULL,
        worker_limit INTEGER NOT NULL,
        version      TEXT    NOT NULL
      );

      CREATE TABLE batch_tombstones (
        id         TEXT   PRIMARY KEY,
        project    TEXT   NOT NULL,
        deleted_at BIGINT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'webhooks, uploads, segment registration order',
    // Issue 10: webhook endpoints and their delivery outbox (times: created_at in unix seconds, the
    // delivery schedule and leases in ms by the store's clock); uploads sent in parts; and a
    // registration order for result segments (the cursor of results read while a batch runs).
    sql: `
      CREATE TABLE webhook_endpoints (
        seq                        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id                         TEXT    NOT NULL UNIQUE,
        project                    TEXT    NOT NULL,
        url                        TEXT    NOT NULL,
        events                     TEXT,
        secret                     TEXT    NOT NULL,
        previous_secret            TEXT,
        previous_secret_expires_at BIGINT,
        created_at                 BIGINT NOT NULL
      );
      CREATE INDEX webhook_endpoints_project ON webhook_endpoints (project, seq);

      CREATE TABLE webhook_deliveries (
        seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id               TEXT    NOT NULL UNIQUE,
        event_id         TEXT    NOT NULL,
        endpoint_id      TEXT    NOT NULL,
        project          TEXT    NOT NULL,
        type             TEXT    NOT NULL,
        payload          TEXT    NOT NULL,
        created_at       BIGINT NOT NULL,
        status           TEXT    NOT NULL DEFAULT 'pending',
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  BIGINT NOT NULL,
        last_status      INTEGER,
        last_error       TEXT,
        delivered_at     BIGINT,
        lease_owner      TEXT,
        lease_epoch      INTEGER NOT NULL DEFAULT 0,
        lease_expires_at BIGINT
      );
      CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
      CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, seq);

      CREATE TABLE uploads (
        seq                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id                 TEXT    NOT NULL UNIQUE,
        project            TEXT    NOT NULL,
        filename           TEXT    NOT NULL,
        purpose            TEXT    NOT NULL,
        bytes              BIGINT NOT NULL,
        mime_type          TEXT    NOT NULL,
        created_at         BIGINT NOT NULL,
        expires_at         BIGINT NOT NULL,
        status             TEXT    NOT NULL DEFAULT 'pending',
        file_id            TEXT,
        file_expires_after BIGINT
      );
      CREATE INDEX uploads_status_expires ON uploads (status, expires_at);

      CREATE TABLE upload_parts (
        seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id         TEXT    NOT NULL UNIQUE,
        upload_id  TEXT    NOT NULL,
        blob_key   TEXT    NOT NULL,
        bytes      BIGINT  NOT NULL,
        created_at BIGINT  NOT NULL
      );
      CREATE INDEX upload_parts_upload ON upload_parts (upload_id, seq);

      CREATE SEQUENCE result_segments_reg_seq;
      ALTER TABLE result_segments ADD COLUMN reg_seq BIGINT NOT NULL DEFAULT nextval('result_segments_reg_seq');
      CREATE INDEX result_segments_reg ON result_segments (batch_id, reg_seq);
    `,
  },
  {
    version: 3,
    name: 'upload completion claim',
    // As SQLite's migration 7: the completing replica's claim (ms by the database's clock).
    sql: `
      ALTER TABLE uploads ADD COLUMN claim_token TEXT;
      ALTER TABLE uploads ADD COLUMN claim_expires_at BIGINT;
    `,
  },
  {
    version: 4,
    name: 'batch input order',
    // As SQLite's migration 8: the shards are ranges of a copy of the input grouped by prompt prefix.
    sql: `ALTER TABLE batches ADD COLUMN input_order TEXT NOT NULL DEFAULT 'file';`,
  },
];

/** The session lock every opening store takes before it reads or changes the schema. */
const MIGRATION_LOCK = `hashtext('besh:migrations')`;

/**
 * Applies every migration newer than the database, in order, each in its own transaction, under a
 * session advisory lock (so replicas opening at once apply each exactly once, the others waiting).
 * Returns the versions applied by this call. Refuses a database written by a newer BESH.
 */
export async function migrate(pool: pg.Pool, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  checkOrder(migrations);
  const client = await pool.connect();
  let failed: Error | undefined;
  try {
    await client.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK})`);
    // Created under the lock: CREATE TABLE IF NOT EXISTS is not safe against itself in another session.
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`);
    const res = await client.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations');
    const current = res.rows[0]?.v ?? 0;
    const latest = migrations.at(-1)?.version ?? 0;
    if (current > latest) throw new Error(`Database schema version ${current} is newer than this BESH supports (${latest})`);

    const applied: number[] = [];
    for (const m of migrations) {
      if (m.version <= current) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Math.floor(Date.now() / 1000)]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
      applied.push(m.version);
    }
    await client.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`);
    return applied;
  } catch (err) {
    failed = err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    // On failure the connection is destroyed, which also frees its session lock.
    client.release(failed);
  }
}

function checkOrder(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`Migration #${i} has version ${m.version}, expected ${i + 1}`);
  });
}
