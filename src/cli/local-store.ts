import { resolve } from 'node:path';

import type { Command } from 'commander';

import type { MetaStore } from '../store/meta-store.js';
import { loadDotEnv } from './env.js';

export interface LocalStoreOptions {
  dataDir?: string;
  json?: boolean;
}

/**
 * The options every operator command takes: the data directory, or a server and an admin key
 * (then it works over HTTP).
 */
export const withLocalStoreOptions = (cmd: Command): Command =>
  cmd
    .option('--data-dir <dir>', 'the BESH data directory (BESH_DATA_DIR, default ./data)')
    .option('--base-url <url>', 'work over HTTP on this BESH instead (needs an admin key: --api-key or OPENAI_API_KEY)')
    .option('--api-key <key>', 'admin key for --base-url (env OPENAI_API_KEY)')
    .option('--json', 'print JSON instead of text');

/** Usage errors of the operator commands: a message on stderr, exit code 2. */
export const usageFailure =
  (command: string) =>
  (message: string): never => {
    process.stderr.write(`besh ${command}: ${message}\n`);
    process.exit(2);
  };

/**
 * The store of this BESH, opened directly: BESH_DATABASE_URL (a cluster's PostgreSQL), else the
 * SQLite file of `--data-dir`, BESH_DATA_DIR (environment or ./.env) or ./data. Keys and limits
 * are an operator's business, done where the data lives (`docker compose exec besh node dist/cli/main.js keys
 * create …`), and must work before any key exists. Running servers see the changes at once (they
 * read keys per request).
 */
export async function withLocalStore<T>(opts: LocalStoreOptions, fn: (store: MetaStore, dataDir: string) => Promise<T>): Promise<T> {
  loadDotEnv();
  const dataDir = resolve(opts.dataDir ?? process.env.BESH_DATA_DIR ?? './data');
  const [{ databaseConfig }, { openMetaStore }] = await Promise.all([import('../config.js'), import('../runtime/open-stores.js')]);
  // --data-dir names a data directory, so it wins over a database URL in the environment.
  const url = opts.dataDir === undefined ? process.env.BESH_DATABASE_URL?.trim() || undefined : undefined;
  const store = await openMetaStore(databaseConfig(url, dataDir, process.cwd()));
  try {
    return await fn(store, dataDir);
  } finally {
    await store.close();
  }
}
