import { join, resolve } from 'node:path';

import type { Command } from 'commander';

import type { SqliteMetaStore } from '../store/sqlite/sqlite-meta-store.js';
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
 * The store of the BESH on this machine (`--data-dir`, else BESH_DATA_DIR from the environment or
 * ./.env, else ./data), opened directly: keys and limits are an operator's business, done where
 * the data lives (`docker compose exec besh besh keys create …`), and must work before any key exists.
 * A running server sees the changes at once (SQLite in WAL mode; it reads keys per request).
 */
export async function withLocalStore<T>(opts: LocalStoreOptions, fn: (store: SqliteMetaStore, dataDir: string) => Promise<T>): Promise<T> {
  loadDotEnv();
  const dataDir = resolve(opts.dataDir ?? process.env.BESH_DATA_DIR ?? './data');
  const { SqliteMetaStore } = await import('../store/sqlite/sqlite-meta-store.js');
  const store = SqliteMetaStore.open(join(dataDir, 'besh.sqlite'));
  try {
    return await fn(store, dataDir);
  } finally {
    await store.close();
  }
}
