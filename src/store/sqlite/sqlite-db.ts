import type Database from 'better-sqlite3';

import { coerceError } from '../../domain/index.js';

// What the SQLite statements share that PostgreSQL spells differently (pg-db.ts is its twin).

/**
 * The store's clock in SQLite statements: a bound parameter (ms, the process's `now()`), as the
 * shared fragments of `../sql/` take it. One process uses the file, so its clock is the store's.
 */
export const NOW = '@now';

/**
 * `column IN (the JSON array bound to @param)`. SQLite has no array parameters (PostgreSQL binds
 * `= ANY(@param::text[])`), so a list of statuses is bound as JSON text and read with json_each:
 * the statement stays prepared once whatever the list's length.
 */
export const inJsonList = (column: string, param: string): string => `${column} IN (SELECT value FROM json_each(${param}))`;

/** A prepared statement taking named parameters `P` and returning rows `R`. */
export type Stmt<P, R = unknown> = Database.Statement<[P], R>;

/**
 * Runs synchronous work as a settled promise: a throw (a SQLite error, a closed database) becomes
 * a rejection, never a synchronous throw, so callers see one failure path on every dialect.
 */
export function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(coerceError(err));
  }
}
