import { claimableShard, liveLease } from './live-batch.js';
import { FINALIZE_SQL, RUN_SQL } from './statuses.js';

// What listClaimable reports (cluster-store-spec.md, `listClaimable`), as SQL both dialects run.

/**
 * The `need` of the batch aliased `b` (finalize, run, validate), or NULL when nothing is claimable.
 * Finalize needs every shard done, in each of FINALIZE_SQL (a finalizing batch with a shard not
 * done is not claimed: its finalizer would only give the lease back). A batch with no shard at all
 * finalizes too: one cancelled before its validation made any (it must still end `cancelled`), or
 * one whose input had no request line.
 */
export function claimNeedSql(now: string, b = 'b'): string {
  const shards = `FROM batch_shards cs WHERE cs.batch_id = ${b}.id`;
  return `CASE
    WHEN ${b}.status IN (${FINALIZE_SQL}) AND NOT ${liveLease(b, now)} AND NOT EXISTS (SELECT 1 ${shards} AND cs.state <> 'done')
      THEN 'finalize'
    WHEN ${b}.status IN (${RUN_SQL}) AND EXISTS (SELECT 1 ${shards} AND ${claimableShard('cs', now)}) THEN 'run'
    WHEN ${b}.status = 'validating' AND NOT ${liveLease(b, now)} THEN 'validate'
  END`;
}

/** Live shard leases of the batch aliased `b`. */
export const leasedShardsSql = (now: string, b = 'b'): string =>
  `(SELECT COUNT(*) FROM batch_shards ls WHERE ls.batch_id = ${b}.id AND ${liveLease('ls', now)})`;

/** Claimable batches, oldest first: `id, project, status, created_at, expires_at, need, leased_shards`. */
export function claimableSql(now: string, limitParam: string): string {
  return `SELECT w.id, w.project, w.status, w.created_at, w.expires_at, w.need, ${leasedShardsSql(now, 'w')} AS leased_shards FROM (
      SELECT b.seq, b.id, b.project, b.status, b.created_at, b.expires_at, ${claimNeedSql(now)} AS need
      FROM batches b WHERE b.status IN ('validating', ${FINALIZE_SQL})
    ) w WHERE w.need IS NOT NULL ORDER BY w.seq LIMIT ${limitParam}`;
}

/** Live shard and batch leases per project (of every batch): `project, n`. */
export function leasesByProjectSql(now: string): string {
  return `SELECT project, CAST(SUM(n) AS BIGINT) AS n FROM (
      SELECT b.project, COUNT(*) AS n FROM batch_shards s JOIN batches b ON b.id = s.batch_id WHERE ${liveLease('s', now)} GROUP BY b.project
      UNION ALL
      SELECT b.project, COUNT(*) AS n FROM batches b WHERE ${liveLease('b', now)} GROUP BY b.project
    ) l GROUP BY project`;
}

/** Requests in flight over live shard leases, by the batch's project: `project, n`. */
export function inFlightByProjectSql(now: string): string {
  return `SELECT b.project, CAST(SUM(s.in_flight) AS BIGINT) AS n FROM batch_shards s JOIN batches b ON b.id = s.batch_id
    WHERE ${liveLease('s', now)} GROUP BY b.project`;
}
