import type Database from 'better-sqlite3';

import { BATCH_COLUMNS, FILE_COLUMNS, insertSql } from '../sql/columns.js';
import { liveBatchColumns, queuedRequestsSql } from '../sql/live-batch.js';
import { SEQ_TOP, whole } from '../sql/paging.js';
import type { ApiKeyRow, BatchParams, BatchRow, FileParams, FileRow } from '../sql/rows.js';
import { UNFINISHED_SQL } from '../sql/statuses.js';
import { TRANSITION_FENCE_SQL, type TransitionParams, transitionSetSql } from '../sql/transition.js';
import { inJsonList, NOW, type Stmt } from './sqlite-db.js';

// The statements of files, batches, projects and keys (postgres/statements.ts is their twin),
// each prepared once per connection. Lists resolve their cursor first (`listCursor`): an `after`
// naming no row, or another project's, gives an empty page.

const inProject = '(@project IS NULL OR project = @project)';
const unfinished = `status IN (${UNFINISHED_SQL})`;
const LIVE = liveBatchColumns(NOW);

/** The bound parameters of a list page: start after `after_seq`, fetch `limit` rows (one more than the page). */
export interface CursorParams {
  after_seq: number;
  limit: number;
  project: string | null;
  now: number;
}

type SeqLookup = Stmt<{ id: string; project: string | null }, number>;

export interface LimitRow {
  max_stored_bytes: number | null;
  max_active_batches: number | null;
  max_queued_requests: number | null;
}

export interface ShardParams {
  batch_id: string;
  shard_no: number;
  first_line: number;
  requests: number;
  start_byte: number;
  end_byte: number;
}

/** The compare-and-set of `transition`, with its `from` list as JSON (see inJsonList). */
export type SqliteTransitionParams = TransitionParams & { from: string };

export type Statements = ReturnType<typeof prepareStatements>;

export function prepareStatements(db: Database.Database) {
  const seqOf = (table: string): SeqLookup => db.prepare<{ id: string; project: string | null }, number>(`SELECT seq FROM ${table} WHERE id = @id AND ${inProject}`).pluck();
  const listFiles = <P extends CursorParams>(filter: string, asc: boolean) =>
    db.prepare<P, FileRow>(
      `SELECT * FROM files WHERE ${filter}seq ${asc ? '>' : '<'} @after_seq AND ${inProject} ORDER BY seq ${asc ? 'ASC' : 'DESC'} LIMIT @limit`,
    );
  const byPurpose = 'purpose = @purpose AND ';
  const notInputOfUnfinished = (f: string) => `NOT EXISTS (SELECT 1 FROM batches b WHERE b.input_file_id = ${f}.id AND b.${unfinished})`;

  const files = {
    insert: db.prepare<FileParams>(insertSql('files', FILE_COLUMNS)),
    get: db.prepare<[string], FileRow>('SELECT * FROM files WHERE id = ?'),
    seq: seqOf('files'),
    listAsc: listFiles<CursorParams>('', true),
    listDesc: listFiles<CursorParams>('', false),
    listByPurposeAsc: listFiles<CursorParams & { purpose: string }>(byPurpose, true),
    listByPurposeDesc: listFiles<CursorParams & { purpose: string }>(byPurpose, false),
    delete: db.prepare<[string]>('DELETE FROM files WHERE id = ?'),
    listExpired: db.prepare<{ now: number; limit: number }, FileRow>(
      `SELECT * FROM files f
       WHERE f.expires_at IS NOT NULL AND f.expires_at <= @now AND ${notInputOfUnfinished('f')}
       ORDER BY f.expires_at ASC, f.seq ASC LIMIT @limit`,
    ),
    deleteExpired: db.prepare<{ id: string; now: number }>(
      `DELETE FROM files WHERE id = @id AND expires_at IS NOT NULL AND expires_at <= @now AND ${notInputOfUnfinished('files')}`,
    ),
    bytesByPurpose: db.prepare<{ project: string | null }, { purpose: string; bytes: number }>(
      `SELECT purpose, COALESCE(SUM(bytes), 0) AS bytes FROM files WHERE ${inProject} GROUP BY purpose`,
    ),
  };

  const batches = {
    insert: db.prepare<BatchParams>(insertSql('batches', BATCH_COLUMNS)),
    get: db.prepare<{ id: string; now: number }, BatchRow>(`SELECT ${LIVE} FROM batches b WHERE b.id = @id`),
    seq: seqOf('batches'),
    listDesc: db.prepare<CursorParams, BatchRow>(
      `SELECT ${LIVE} FROM batches b WHERE b.seq < @after_seq AND (@project IS NULL OR b.project = @project) ORDER BY b.seq DESC LIMIT @limit`,
    ),
    isInputOfUnfinished: db.prepare<[string], number>(`SELECT 1 FROM batches WHERE ${unfinished} AND input_file_id = ? LIMIT 1`).pluck(),
    countByStatus: db.prepare<{ project: string | null }, { status: string; n: number }>(`SELECT status, COUNT(*) AS n FROM batches WHERE ${inProject} GROUP BY status`),
    // One compare-and-set UPDATE for every transition (prepared once: the bound flags decide which
    // columns change). RETURNING only the id: the caller reads the batch live once its shards exist.
    transition: db.prepare<SqliteTransitionParams, { id: string }>(
      `UPDATE batches SET ${transitionSetSql()}
       WHERE id = @id AND ${inJsonList('status', '@from')} AND ${TRANSITION_FENCE_SQL}
       RETURNING id`,
    ),
    // One row per statement: SQLite has no unnest (PostgreSQL inserts every shard in one).
    insertShard: db.prepare<ShardParams>(insertSql('batch_shards', ['batch_id', 'shard_no', 'first_line', 'requests', 'start_byte', 'end_byte'])),
  };

  const projects = {
    storedBytes: db.prepare<{ project: string }, number>('SELECT COALESCE(SUM(bytes), 0) FROM files WHERE project = @project').pluck(),
    storedBytesByProject: db.prepare<[], { project: string; bytes: number }>('SELECT project, SUM(bytes) AS bytes FROM files GROUP BY project'),
    activeBatches: db.prepare<{ project: string }, number>(`SELECT COUNT(*) FROM batches WHERE project = @project AND ${unfinished}`).pluck(),
    queuedRequests: db.prepare<{ project: string }, number>(queuedRequestsSql('@project')).pluck(),
    // SQLite compares text by code point (BINARY), as PostgreSQL's `COLLATE "C"` does.
    list: db
      .prepare<[], string>('SELECT project FROM files UNION SELECT project FROM batches UNION SELECT project FROM api_keys UNION SELECT project FROM project_limits ORDER BY 1')
      .pluck(),
    getLimits: db.prepare<[string], LimitRow>('SELECT max_stored_bytes, max_active_batches, max_queued_requests FROM project_limits WHERE project = ?'),
    setLimits: db.prepare<{
      project: string;
      set_bytes: number;
      max_stored_bytes: number | null;
      set_active: number;
      max_active_batches: number | null;
      set_queued: number;
      max_queued_requests: number | null;
    }>(
      `INSERT INTO project_limits (project, max_stored_bytes, max_active_batches, max_queued_requests)
       VALUES (@project, CASE WHEN @set_bytes = 1 THEN @max_stored_bytes END, CASE WHEN @set_active = 1 THEN @max_active_batches END,
               CASE WHEN @set_queued = 1 THEN @max_queued_requests END)
       ON CONFLICT (project) DO UPDATE SET
         max_stored_bytes = CASE WHEN @set_bytes = 1 THEN @max_stored_bytes ELSE max_stored_bytes END,
         max_active_batches = CASE WHEN @set_active = 1 THEN @max_active_batches ELSE max_active_batches END,
         max_queued_requests = CASE WHEN @set_queued = 1 THEN @max_queued_requests ELSE max_queued_requests END`,
    ),
  };

  const keys = {
    insert: db.prepare<Omit<ApiKeyRow, 'seq'>>(insertSql('api_keys', ['id', 'project', 'admin', 'name', 'hash', 'prefix', 'created_at', 'revoked_at', 'last_used_at'])),
    byHash: db.prepare<[string], ApiKeyRow>('SELECT * FROM api_keys WHERE hash = ?'),
    list: db.prepare<[], ApiKeyRow>('SELECT * FROM api_keys ORDER BY seq ASC'),
    revoke: db.prepare<{ id: string; at: number }>('UPDATE api_keys SET revoked_at = @at WHERE id = @id AND revoked_at IS NULL'),
    count: db.prepare<[], number>('SELECT COUNT(*) FROM api_keys').pluck(),
    touch: db.prepare<{ id: string; at: number }>('UPDATE api_keys SET last_used_at = @at WHERE id = @id'),
  };

  return { files, batches, projects, keys };
}

/**
 * Resolves a list cursor: the `seq` to start after and the rows to fetch (one more than the page,
 * so `hasMore` is exact). Null when `after` names no row: the page is empty.
 */
export function listCursor(
  seqOf: SeqLookup,
  q: { after?: string | undefined; limit: number; project?: string | undefined },
  asc: boolean,
  now: number,
): CursorParams | null {
  const limit = whole(q.limit) + 1;
  const project = q.project ?? null;
  if (q.after === undefined) return { after_seq: asc ? 0 : SEQ_TOP, limit, project, now };
  // A cursor naming another project's object is as unknown as a missing one.
  const seq = seqOf.get({ id: q.after, project });
  return seq === undefined ? null : { after_seq: seq, limit, project, now };
}
