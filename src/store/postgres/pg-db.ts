import pg from 'pg';

import type { StoreEvent } from '../meta-store.js';

/** The store's clock: ms since the epoch, by the database server, read inside the statement. */
export const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/** The channel every emitting write notifies in its transaction. */
export const EVENTS_CHANNEL = 'besh_events';

/**
 * A statement with named parameters (`@name`, as better-sqlite3 binds them), compiled once to
 * PostgreSQL's `$n`. `P` is the parameter object, `R` a result row.
 */
export interface Sql<P, R> {
  readonly text: string;
  readonly names: readonly string[];
  /** Phantom: ties the statement to its parameter and row types. */
  readonly types?: (p: P) => R;
}

export function sql<P extends object = Record<never, never>, R = unknown>(text: string): Sql<P, R> {
  const names: string[] = [];
  const compiled = text.replace(/@([a-z_][a-z0-9_]*)/g, (_m, name: string) => {
    if (!names.includes(name)) names.push(name);
    return `$${names.indexOf(name) + 1}`;
  });
  return { text: compiled, names };
}

/** Runs statements on the pool (each its own transaction) or on one client inside a transaction. */
export class Db {
  readonly #q: pg.Pool | pg.PoolClient;

  constructor(q: pg.Pool | pg.PoolClient) {
    this.#q = q;
  }

  async all<P, R>(s: Sql<P, R>, params: P): Promise<R[]> {
    return (await this.#run(s, params)).rows as R[];
  }

  async get<P, R>(s: Sql<P, R>, params: P): Promise<R | undefined> {
    return (await this.#run(s, params)).rows[0] as R | undefined;
  }

  /** Rows written (or returned). */
  async run<P>(s: Sql<P, unknown>, params: P): Promise<number> {
    return (await this.#run(s, params)).rowCount ?? 0;
  }

  /** Queues the events for the change feed; PostgreSQL delivers them when (and only if) the transaction commits. */
  async notify(events: readonly StoreEvent[]): Promise<void> {
    if (events.length > 0) await this.run(NOTIFY, { events: events.map((e) => JSON.stringify(e)) });
  }

  #run<P>(s: Sql<P, unknown>, params: P): Promise<pg.QueryResult> {
    const bag = params as Record<string, unknown>;
    const values = s.names.map((n) => {
      if (!(n in bag)) throw new Error(`Missing named parameter @${n}`);
      return bag[n] ?? null;
    });
    return this.#q.query({ text: s.text, values });
  }
}

const NOTIFY = sql<{ events: string[] }>(`SELECT pg_notify('${EVENTS_CHANNEL}', e) FROM unnest(@events::text[]) AS e`);

/** Runs `fn` in one transaction on one pooled client: committed when it resolves, rolled back when it throws. */
export async function transaction<T>(pool: pg.Pool, fn: (db: Db) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(new Db(client));
    await client.query('COMMIT');
    return result;
  } catch (err) {
    // A client whose rollback fails is in an unknown state: the pool destroys it instead of reusing it.
    await client.query('ROLLBACK').catch((e: unknown) => {
      broken = e instanceof Error ? e : new Error(String(e));
    });
    throw err;
  } finally {
    client.release(broken);
  }
}

/** Advisory transaction locks that serialise the checks the store makes in READ COMMITTED. */
export const LOCK = {
  project: sql<{ project: string }>(`SELECT pg_advisory_xact_lock(hashtext('besh:project:' || @project::text))`),
  file: sql<{ file_id: string }>(`SELECT pg_advisory_xact_lock(hashtext('besh:file:' || @file_id::text))`),
  batch: sql<{ batch_id: string }>(`SELECT pg_advisory_xact_lock(hashtext('besh:batch:' || @batch_id::text))`),
};

function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value ${text} is beyond 2^53`);
  return n;
}

const INT8: number = pg.types.builtins.INT8;
const defaultParser = (oid: number, format?: 'text' | 'binary'): unknown => pg.types.getTypeParser(oid, format) as unknown;

/** int8 columns (bigint, COUNT) as JS numbers, for this store's connections only (pg's global parsers stay as they are). */
export const PG_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8 && format !== 'binary' ? parseInt8 : defaultParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};
