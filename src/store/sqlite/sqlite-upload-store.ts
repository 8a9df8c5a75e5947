import type Database from 'better-sqlite3';

import type { UploadStore } from '../upload-store.js';

/** UploadStore on the SQLite file (see upload-store.ts). */
export class SqliteUploadStore implements UploadStore {
  readonly ready = true;
  readonly #db: Database.Database;

  constructor(db: Database.Database) {
    this.#db = db;
    void this.#db;
  }
}
