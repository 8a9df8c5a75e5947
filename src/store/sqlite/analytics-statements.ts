import type Database from 'better-sqlite3';

import { ANALYTICS_COUNTERS, type AnalyticsMinute } from '../meta-store.js';
import type { BatchRow } from '../sql/rows.js';

/** camelCase counter → snake_case column (constant identifiers only). */
const column = (c: string): string => c.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`);
const COLUMNS = ANALYTICS_COUNTERS.map(column);

interface MinuteRow {
  minute: number;
  [column: string]: number;
}

/** The project of minutes summed over every project. */
export const ALL_PROJECTS = '*';

/** The dashboard's statements: per-minute analytics counters and the paged, filterable batch list. */
export function prepareAnalytics(db: Database.Database, liveBatchSelect: string) {
  const upsert = db.prepare<Record<string, number | string>>(
    `INSERT INTO analytics_project_minutes (project, minute, ${COLUMNS.join(', ')}) VALUES (@project, @minute, ${COLUMNS.map((c) => `@${c}`).join(', ')})
     ON CONFLICT (project, minute) DO UPDATE SET ${COLUMNS.map((c) => `${c} = ${c} + excluded.${c}`).join(', ')}`,
  );
  const listOne = db.prepare<[string, number, number], MinuteRow>(
    'SELECT * FROM analytics_project_minutes WHERE project = ? AND minute >= ? AND minute < ? ORDER BY minute',
  );
  const listAll = db.prepare<[number, number], MinuteRow>(
    `SELECT minute, ${COLUMNS.map((c) => `SUM(${c}) AS ${c}`).join(', ')} FROM analytics_project_minutes
     WHERE minute >= ? AND minute < ? GROUP BY minute ORDER BY minute`,
  );
  const addMinutes = db.transaction((rows: readonly AnalyticsMinute[]) => {
    for (const r of rows) {
      const params: Record<string, number | string> = { project: r.project, minute: r.minute };
      ANALYTICS_COUNTERS.forEach((c, i) => (params[COLUMNS[i]!] = Math.round(r[c])));
      upsert.run(params);
    }
  });
  const statusFilter = '(@status IS NULL OR b.status = @status) AND (@project IS NULL OR b.project = @project)';
  return {
    addMinutes: (rows: readonly AnalyticsMinute[]): void => addMinutes.immediate(rows),
    listMinutes: (from: number, to: number, project: string | undefined): AnalyticsMinute[] =>
      (project === undefined ? listAll.all(from, to) : listOne.all(project, from, to)).map((row) => {
        const m = { project: project ?? ALL_PROJECTS, minute: row.minute } as AnalyticsMinute;
        ANALYTICS_COUNTERS.forEach((c, i) => (m[c] = row[COLUMNS[i]!] ?? 0));
        return m;
      }),
    pruneMinutes: db.prepare<[number]>('DELETE FROM analytics_project_minutes WHERE minute < ?'),
    countBatches: db.prepare<{ status: string | null; project: string | null }, number>(`SELECT COUNT(*) FROM batches b WHERE ${statusFilter}`).pluck(),
    batchesPage: db.prepare<{ status: string | null; project: string | null; limit: number; offset: number; now: number }, BatchRow>(
      `SELECT ${liveBatchSelect} FROM batches b WHERE ${statusFilter} ORDER BY b.seq DESC LIMIT @limit OFFSET @offset`,
    ),
    countByStatus: db.prepare<{ since: number; project: string | null }, { status: string; n: number }>(
      'SELECT status, COUNT(*) AS n FROM batches WHERE created_at >= @since AND (@project IS NULL OR project = @project) GROUP BY status',
    ),
  };
}
