import type pg from 'pg';

import type { UploadStore } from '../upload-store.js';

/** UploadStore on PostgreSQL (see upload-store.ts). */
export class PostgresUploadStore implements UploadStore {
  readonly ready = true;
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
    void this.#pool;
  }
}
