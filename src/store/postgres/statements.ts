import { BATCH_COLUMNS, FILE_COLUMNS, insertSql } from '../sql/columns.js';
import { liveBatchColumns, queuedRequestsSql } from '../sql/live-batch.js';
import type { ApiKeyRow, BatchParams, BatchRow, FileParams, FileRow } from '../sql/rows.js';
import { UNFINISHED_SQL } from '../sql/statuses.js';
import { TRANSITION_FENCE_SQL, type TransitionParams, transitionSetSql } from '../sql/transition.js';
import { NOW_MS, sql } from './pg-db.js';

// The statements of files, batches, projects and keys. Lists take their cursor as a subquery: an
// `after` naming no row (or another project's) compares with NULL and gives an empty page.

const inProject = (a = ''): string => `(@project::text IS NULL OR ${a}project = @project)`;
const LIVE = liveBatchColumns(NOW_MS);

interface ListParams {
  project: string | null;
  after: string | null;
  limit: number;
}

function listFiles(order: 'ASC' | 'DESC') {
  const cmp = order === 'ASC' ? '>' : '<';
  return sql<ListParams & { purpose: string | null }, FileRow>(
    `SELECT * FROM files
     WHERE ${inProject()} AND (@purpose::text IS NULL OR purpose = @purpose)
       AND (@after::text IS NULL OR seq ${cmp} (SELECT a.seq FROM files a WHERE a.id = @after AND ${inProject('a.')}))
     ORDER BY seq ${order} LIMIT @limit`,
  );
}

export const FILES = {
  insert: sql<FileParams>(insertSql('files', FILE_COLUMNS)),
  get: sql<{ id: string }, FileRow>('SELECT * FROM files WHERE id = @id'),
  listAsc: listFiles('ASC'),
  listDesc: listFiles('DESC'),
  delete: sql<{ id: string }>('DELETE FROM files WHERE id = @id'),
  listExpired: sql<{ now: number; limit: number }, FileRow>(
    `SELECT * FROM files f
     WHERE f.expires_at IS NOT NULL AND f.expires_at <= @now
       AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.input_file_id = f.id AND b.status IN (${UNFINISHED_SQL}))
     ORDER BY f.expires_at ASC, f.seq ASC LIMIT @limit`,
  ),
  deleteExpired: sql<{ id: string; now: number }>(
    `DELETE FROM files f
     WHERE f.id = @id AND f.expires_at IS NOT NULL AND f.expires_at <= @now
       AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.input_file_id = f.id AND b.status IN (${UNFINISHED_SQL}))`,
  ),
  bytesByPurpose: sql<{ project: string | null }, { purpose: string; bytes: number }>(
    `SELECT purpose, COALESCE(SUM(bytes), 0)::bigint AS bytes FROM files WHERE ${inProject()} GROUP BY purpose`,
  ),
};

export const BATCHES = {
  insert: sql<BatchParams>(insertSql('batches', BATCH_COLUMNS)),
  get: sql<{ id: string }, BatchRow>(`SELECT ${LIVE} FROM batches b WHERE b.id = @id`),
  listDesc: sql<ListParams, BatchRow>(
    `SELECT ${LIVE} FROM batches b
     WHERE ${inProject('b.')} AND (@after::text IS NULL OR b.seq < (SELECT a.seq FROM batches a WHERE a.id = @after AND ${inProject('a.')}))
     ORDER BY b.seq DESC LIMIT @limit`,
  ),
  isInputOfUnfinished: sql<{ file_id: string }, { one: number }>(
    `SELECT 1 AS one FROM batches WHERE input_file_id = @file_id AND status IN (${UNFINISHED_SQL}) LIMIT 1`,
  ),
  countByStatus: sql<{ project: string | null }, { status: string; n: number }>(
    `SELECT status, COUNT(*) AS n FROM batches WHERE ${inProject()} GROUP BY status`,
  ),
  // The compare-and-set of every status change; the batch it returns is read live.
  transition: sql<TransitionParams & { from: string[] }, BatchRow>(
    `WITH moved AS (
       UPDATE batches SET ${transitionSetSql()}
       WHERE id = @id AND status = ANY(@from::text[]) AND ${TRANSITION_FENCE_SQL}
       RETURNING *)
     SELECT ${LIVE} FROM moved b`,
  ),
  insertShards: sql<{ batch_id: string; shard_no: number[]; first_line: number[]; requests: number[]; start_byte: number[]; end_byte: number[] }>(
    `INSERT INTO batch_shards (batch_id, shard_no, first_line, requests, start_byte, end_byte)
     SELECT @batch_id, * FROM unnest(@shard_no::int[], @first_line::bigint[], @requests::bigint[], @start_byte::bigint[], @end_byte::bigint[])`,
  ),
};

export interface LimitRow {
  max_stored_bytes: number | null;
  max_active_batches: number | null;
  max_queued_requests: number | null;
}

export const PROJECTS = {
  storedBytes: sql<{ project: string }, { n: number }>('SELECT COALESCE(SUM(bytes), 0)::bigint AS n FROM files WHERE project = @project'),
  storedBytesByProject: sql<Record<never, never>, { project: string; bytes: number }>(
    'SELECT project, SUM(bytes)::bigint AS bytes FROM files GROUP BY project',
  ),
  activeBatches: sql<{ project: string }, { n: number }>(`SELECT COUNT(*) AS n FROM batches WHERE project = @project AND status IN (${UNFINISHED_SQL})`),
  queuedRequests: sql<{ project: string }, { n: number }>(queuedRequestsSql('@project')),
  // Sorted by code point, as SQLite sorts: the database's collation may sort case-insensitively.
  list: sql<Record<never, never>, { project: string }>(
    `SELECT project FROM (SELECT project FROM files UNION SELECT project FROM batches UNION SELECT project FROM api_keys
       UNION SELECT project FROM project_limits) p ORDER BY project COLLATE "C"`,
  ),
  getLimits: sql<{ project: string }, LimitRow>('SELECT max_stored_bytes, max_active_batches, max_queued_requests FROM project_limits WHERE project = @project'),
  setLimits: sql<{
    project: string;
    set_bytes: number;
    max_stored_bytes: number | null;
    set_active: number;
    max_active_batches: number | null;
    set_queued: number;
    max_queued_requests: number | null;
  }>(
    `INSERT INTO project_limits AS l (project, max_stored_bytes, max_active_batches, max_queued_requests)
     VALUES (@project, CASE WHEN @set_bytes = 1 THEN @max_stored_bytes::bigint END, CASE WHEN @set_active = 1 THEN @max_active_batches::bigint END,
             CASE WHEN @set_queued = 1 THEN @max_queued_requests::bigint END)
     ON CONFLICT (project) DO UPDATE SET
       max_stored_bytes = CASE WHEN @set_bytes = 1 THEN @max_stored_bytes::bigint ELSE l.max_stored_bytes END,
       max_active_batches = CASE WHEN @set_active = 1 THEN @max_active_batches::bigint ELSE l.max_active_batches END,
       max_queued_requests = CASE WHEN @set_queued = 1 THEN @max_queued_requests::bigint ELSE l.max_queued_requests END`,
  ),
};

export const KEYS = {
  insert: sql<Omit<ApiKeyRow, 'seq'>>(insertSql('api_keys', ['id', 'project', 'admin', 'name', 'hash', 'prefix', 'created_at', 'revoked_at', 'last_used_at'])),
  byHash: sql<{ hash: string }, ApiKeyRow>('SELECT * FROM api_keys WHERE hash = @hash'),
  list: sql<Record<never, never>, ApiKeyRow>('SELECT * FROM api_keys ORDER BY seq ASC'),
  revoke: sql<{ id: string; at: number }>('UPDATE api_keys SET revoked_at = @at WHERE id = @id AND revoked_at IS NULL'),
  count: sql<Record<never, never>, { n: number }>('SELECT COUNT(*) AS n FROM api_keys'),
  touch: sql<{ id: string; at: number }>('UPDATE api_keys SET last_used_at = @at WHERE id = @id'),
};
