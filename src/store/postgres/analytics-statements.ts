import { ANALYTICS_COUNTERS, type AnalyticsMinute } from '../meta-store.js';
import { ALL_PROJECTS, ANALYTICS_COLUMNS } from '../sql/analytics-columns.js';
import { liveBatchColumns } from '../sql/live-batch.js';
import type { BatchRow } from '../sql/rows.js';
import { type Db, NOW_MS, sql } from './pg-db.js';

const COLUMNS = ANALYTICS_COLUMNS;

type MinuteRow = { minute: number } & Record<string, number>;
type PageFilter = { status: string | null; project: string | null };

const filter = '(@status::text IS NULL OR b.status = @status) AND (@project::text IS NULL OR b.project = @project)';

// Every row of one call in one statement. Rows of the same project and minute are summed first:
// one INSERT … ON CONFLICT may not touch a row twice.
const upsert = sql<Record<string, string[] | number[]>>(
  `INSERT INTO analytics_project_minutes AS m (project, minute, ${COLUMNS.join(', ')})
   SELECT * FROM unnest(@project::text[], @minute::bigint[], ${COLUMNS.map((c) => `@${c}::bigint[]`).join(', ')})
   ON CONFLICT (project, minute) DO UPDATE SET ${COLUMNS.map((c) => `${c} = m.${c} + excluded.${c}`).join(', ')}`,
);
const listOne = sql<{ project: string; from: number; to: number }, MinuteRow>(
  'SELECT * FROM analytics_project_minutes WHERE project = @project AND minute >= @from AND minute < @to ORDER BY minute',
);
const listAll = sql<{ from: number; to: number }, MinuteRow>(
  `SELECT minute, ${COLUMNS.map((c) => `SUM(${c})::bigint AS ${c}`).join(', ')} FROM analytics_project_minutes
   WHERE minute >= @from AND minute < @to GROUP BY minute ORDER BY minute`,
);

/** The dashboard's statements: per-minute analytics counters and the paged, filterable batch list. */
export const ANALYTICS = {
  prune: sql<{ before: number }>('DELETE FROM analytics_project_minutes WHERE minute < @before'),
  countBatches: sql<PageFilter, { n: number }>(`SELECT COUNT(*) AS n FROM batches b WHERE ${filter}`),
  batchesPage: sql<PageFilter & { limit: number; offset: number }, BatchRow>(
    `SELECT ${liveBatchColumns(NOW_MS)} FROM batches b WHERE ${filter} ORDER BY b.seq DESC LIMIT @limit OFFSET @offset`,
  ),
  countByStatus: sql<{ since: number; project: string | null }, { status: string; n: number }>(
    'SELECT status, COUNT(*) AS n FROM batches WHERE created_at >= @since AND (@project::text IS NULL OR project = @project) GROUP BY status',
  ),
};

export async function addMinutes(db: Db, rows: readonly AnalyticsMinute[]): Promise<void> {
  const merged = new Map<string, AnalyticsMinute>();
  for (const r of rows) {
    const key = `${r.minute}\u0000${r.project}`;
    const m = merged.get(key) ?? { ...r, ...Object.fromEntries(ANALYTICS_COUNTERS.map((c) => [c, 0])) };
    for (const c of ANALYTICS_COUNTERS) m[c] += Math.round(r[c]);
    merged.set(key, m);
  }
  if (merged.size === 0) return;
  const all = [...merged.values()];
  const params: Record<string, string[] | number[]> = { project: all.map((m) => m.project), minute: all.map((m) => m.minute) };
  ANALYTICS_COUNTERS.forEach((c, i) => (params[COLUMNS[i]!] = all.map((m) => m[c])));
  await db.run(upsert, params);
}

export async function listMinutes(db: Db, from: number, to: number, project: string | undefined): Promise<AnalyticsMinute[]> {
  const rows = project === undefined ? await db.all(listAll, { from, to }) : await db.all(listOne, { project, from, to });
  return rows.map((row) => {
    const m = { project: project ?? ALL_PROJECTS, minute: row.minute } as AnalyticsMinute;
    ANALYTICS_COUNTERS.forEach((c, i) => (m[c] = row[COLUMNS[i]!] ?? 0));
    return m;
  });
}
