import type Database from 'better-sqlite3';

import type { BatchRecord } from '../../domain/index.js';
import { ANALYTICS_COUNTERS, type AnalyticsMinute, type BatchesPageQuery } from '../meta-store.js';
import { ALL_PROJECTS, ANALYTICS_COLUMNS } from '../sql/analytics-columns.js';
import { liveBatchColumns } from '../sql/live-batch.js';
import { whole } from '../sql/paging.js';
import { type BatchRow, rowToBatch } from '../sql/rows.js';
import { NOW } from './sqlite-db.js';

const COLUMNS = ANALYTICS_COLUMNS;

type MinuteRow = { minute: number } & Record<string, number>;
type PageFilter = { status: string | null; project: string | null };

const filter = '(@status IS NULL OR b.status = @status) AND (@project IS NULL OR b.project = @project)';

/**
 * The dashboard's statements (postgres/analytics-statements.ts is their twin): per-minute analytics
 * counters and the paged, filterable batch list, prepared once; each verb runs synchronously.
 */
export function prepareAnalytics(db: Database.Database, now: () => number) {
  // One row per statement, in one transaction (PostgreSQL sends them all as arrays at once).
  const upsert = db.prepare<Record<string, number | string>>(
    `INSERT INTO analytics_project_minutes (project, minute, ${COLUMNS.join(', ')}) VALUES (@project, @minute, ${COLUMNS.map((c) => `@${c}`).join(', ')})
     ON CONFLICT (project, minute) DO UPDATE SET ${COLUMNS.map((c) => `${c} = ${c} + excluded.${c}`).join(', ')}`,
  );
  const listOne = db.prepare<[string, number, number], MinuteRow>('SELECT * FROM analytics_project_minutes WHERE project = ? AND minute >= ? AND minute < ? ORDER BY minute');
  const listAll = db.prepare<[number, number], MinuteRow>(
    `SELECT minute, ${COLUMNS.map((c) => `SUM(${c}) AS ${c}`).join(', ')} FROM analytics_project_minutes
     WHERE minute >= ? AND minute < ? GROUP BY minute ORDER BY minute`,
  );
  const prune = db.prepare<[number]>('DELETE FROM analytics_project_minutes WHERE minute < ?');
  const countBatches = db.prepare<PageFilter, number>(`SELECT COUNT(*) FROM batches b WHERE ${filter}`).pluck();
  const batchesPage = db.prepare<PageFilter & { limit: number; offset: number; now: number }, BatchRow>(
    `SELECT ${liveBatchColumns(NOW)} FROM batches b WHERE ${filter} ORDER BY b.seq DESC LIMIT @limit OFFSET @offset`,
  );
  const countByStatus = db.prepare<{ since: number; project: string | null }, { status: string; n: number }>(
    'SELECT status, COUNT(*) AS n FROM batches WHERE created_at >= @since AND (@project IS NULL OR project = @project) GROUP BY status',
  );
  const addMinutes = db.transaction((rows: readonly AnalyticsMinute[]) => {
    for (const r of rows) {
      const params: Record<string, number | string> = { project: r.project, minute: r.minute };
      ANALYTICS_COUNTERS.forEach((c, i) => (params[COLUMNS[i]!] = Math.round(r[c])));
      upsert.run(params);
    }
  });

  return {
    addMinutes: (rows: readonly AnalyticsMinute[]): void => addMinutes.immediate(rows),
    listMinutes: (from: number, to: number, project: string | undefined): AnalyticsMinute[] =>
      (project === undefined ? listAll.all(from, to) : listOne.all(project, from, to)).map((row) => {
        const m = { project: project ?? ALL_PROJECTS, minute: row.minute } as AnalyticsMinute;
        ANALYTICS_COUNTERS.forEach((c, i) => (m[c] = row[COLUMNS[i]!] ?? 0));
        return m;
      }),
    pruneMinutes: (before: number): number => prune.run(before).changes,
    batchesPage(q: BatchesPageQuery): { data: BatchRecord[]; total: number } {
      const f = { status: q.status ?? null, project: q.project ?? null };
      const total = countBatches.get(f) ?? 0;
      return { data: batchesPage.all({ ...f, limit: whole(q.limit), offset: whole(q.offset), now: now() }).map(rowToBatch), total };
    },
    countCreatedSince: (since: number, project: string | undefined): Array<{ status: string; n: number }> => countByStatus.all({ since, project: project ?? null }),
  };
}
