import { randomBytes } from 'node:crypto';

import pg from 'pg';

/**
 * The server the PostgreSQL tests use (trust auth). Tests never touch this database's own tables:
 * each test file gets a database of its own, created here and dropped after it.
 */
export const PG_ADMIN_URL = process.env.BESH_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestDatabase {
  name: string;
  url: string;
  /** A raw query on the test database (one connection shared by the file), for setup and assertions. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(text: string, values?: unknown[]): Promise<R[]>;
  /** Empties every table but `schema_migrations` (a fresh store for the next test, without a new database). */
  empty(): Promise<void>;
  /** Ends this file's connections (and any a test left open), then drops the database. */
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL, application_name: 'besh-test-admin' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * A new, empty database (`besh_t_<random>`, not migrated: the first store opened on it migrates
 * it). A migrated template would save only the ~30 ms of the one migration per file, and would
 * need a lock across test processes to create it; so every database starts from template1.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `besh_t_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  let client: pg.Client | null = null;
  const connection = async (): Promise<pg.Client> => {
    if (client === null) {
      const c = new pg.Client({ connectionString: url.href, application_name: 'besh-test' });
      await c.connect();
      client = c;
    }
    return client;
  };
  const query = async <R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> => (await (await connection()).query<R>(text, values)).rows;
  return {
    name,
    url: url.href,
    query,
    async empty() {
      const tables = await query<{ t: string }>(
        `SELECT quote_ident(tablename) AS t FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'`,
      );
      // DELETE, not TRUNCATE: on a few rows it is several times faster.
      if (tables.length > 0) await query(tables.map((r) => `DELETE FROM ${r.t};`).join(' '));
    },
    async drop() {
      await client?.end();
      client = null;
      await admin(async (c) => {
        await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      });
    },
  };
}
