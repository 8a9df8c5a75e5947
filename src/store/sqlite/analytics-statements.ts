import type Database from 'better-sqlite3';

import { ANALYTICS_COUNTERS, type AnalyticsMinute } from '../meta-store.js';
import type { BatchRow } from './rows.js';

/** camelCase counter → snake_case column (constant identifiers only). */
const column = (c: string): string => c.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`);
const COLUMNS = ANALYTICS_COUNTERS.map(column);

interface MinuteRow {
  minute: number;
  [column: string]: number;
}

/** The dashboard's statements: per-minute analytics counters and the paged, filterable batch list. */
export function prepareAnalytics(db: Database.Database) {
  const upsert = db.prepare<Record<string, number>>(
    `INSERT INTO analytics_minutes (minute, ${COLUMNS.join(', ')}) VALUES (@minute, ${COLUMNS.map((c) => `@${c}`).join(', ')})
     ON CONFLICT (minute) DO UPDATE SET ${COLUMNS.map((c) => `${c} = ${c} + excluded.${c}`).join(', ')}`,
  );
  const list = db.prepare<[number, number], MinuteRow>('SELECT * FROM analytics_minutes WHERE minute >= ? AND minute < ? ORDER BY minute');
  const addMinutes = db.transaction((rows: readonly AnalyticsMinute[]) => {
    for (const r of rows) {
      const params: Record<string, number> = { minute: r.minute };
      ANALYTICS_COUNTERS.forEach((c, i) => (params[COLUMNS[i]!] = Math.round(r[c])));
      upsert.run(params);
    }
  });
  const statusFilter = '(@status IS NULL OR status = @status)';
  return {
    addMinutes: (rows: readonly AnalyticsMinute[]): void => addMinutes.immediate(rows),
    listMinutes: (from: number, to: number): AnalyticsMinute[] =>
      list.all(from, to).map((row) => {
        const m = { minute: row.minute } as AnalyticsMinute;
        ANALYTICS_COUNTERS.forEach((c, i) => (m[c] = row[COLUMNS[i]!] ?? 0));
        return m;
      }),
    pruneMinutes: db.prepare<[number]>('DELETE FROM analytics_minutes WHERE minute < ?'),
    countBatches: db.prepare<{ status: string | null }, number>(`SELECT COUNT(*) FROM batches WHERE ${statusFilter}`).pluck(),
    batchesPage: db.prepare<{ status: string | null; limit: number; offset: number }, BatchRow>(
      `SELECT * FROM batches WHERE ${statusFilter} ORDER BY seq DESC LIMIT @limit OFFSET @offset`,
    ),
    countByStatus: db.prepare<[number], { status: string; n: number }>('SELECT status, COUNT(*) AS n FROM batches WHERE created_at >= ? GROUP BY status'),
  };
}
