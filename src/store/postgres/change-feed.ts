import pg from 'pg';

import { BATCH_STATUSES, type BatchStatus } from '../../domain/index.js';
import type { StoreEvent } from '../meta-store.js';
import { WORK_EVENT } from '../sql/events.js';
import { EVENTS_CHANNEL } from './pg-db.js';

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5_000;

/**
 * The cross-process change feed: one dedicated connection LISTENs on the events channel (every
 * emitting write notifies in its own transaction, so this process's writes arrive here too, once)
 * and dispatches each event to the listeners. A lost connection is reopened with exponential
 * backoff; events notified while it was down are gone, so a `work` event follows each reconnect
 * (listeners look again rather than wait).
 */
export class ChangeFeed {
  readonly #config: pg.ClientConfig;
  readonly #onError: (err: Error) => void;
  readonly #listeners = new Set<(e: StoreEvent) => void>();
  #client: pg.Client | null = null;
  #retry: NodeJS.Timeout | null = null;
  #backoffMs = MIN_BACKOFF_MS;
  #closed = false;

  constructor(config: pg.ClientConfig, onError: (err: Error) => void) {
    this.#config = config;
    this.#onError = onError;
  }

  /** Connects and LISTENs; rejects when the first connection fails (the store does not open). */
  async start(): Promise<void> {
    await this.#connect();
  }

  subscribe(listener: (e: StoreEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    if (this.#retry !== null) clearTimeout(this.#retry);
    const client = this.#client;
    this.#client = null;
    await client?.end().catch(() => undefined);
  }

  async #connect(): Promise<void> {
    const client = new pg.Client(this.#config);
    client.on('notification', (n) => {
      if (n.channel === EVENTS_CHANNEL && n.payload !== undefined) this.#dispatch(parseEvent(n.payload));
    });
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${EVENTS_CHANNEL}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.#closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
  }

  #lost(client: pg.Client, err?: Error): void {
    if (client !== this.#client) return;
    this.#client = null;
    if (err !== undefined) this.#onError(err);
    client.end().catch(() => undefined);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    const delay = this.#backoffMs * (0.5 + Math.random() / 2);
    this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_BACKOFF_MS);
    this.#retry = setTimeout(() => {
      this.#retry = null;
      this.#connect().then(
        () => {
          if (this.#closed) return;
          this.#backoffMs = MIN_BACKOFF_MS;
          this.#dispatch(WORK_EVENT);
        },
        (e: unknown) => {
          this.#onError(e instanceof Error ? e : new Error(String(e)));
          this.#schedule();
        },
      );
    }, delay);
    this.#retry.unref();
  }

  #dispatch(e: StoreEvent | null): void {
    if (e === null) return;
    for (const listener of [...this.#listeners]) {
      // A throwing listener must not stop the others (nor the feed).
      try {
        listener(e);
      } catch (err) {
        this.#onError(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }
}

const STATUSES: ReadonlySet<string> = new Set(BATCH_STATUSES);

/** An event from a notification's payload; null for anything else on the channel. */
export function parseEvent(payload: string): StoreEvent | null {
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (o.type === 'work') return WORK_EVENT;
  if (typeof o.id !== 'string' || typeof o.project !== 'string') return null;
  if (o.type === 'batch_deleted') return { type: 'batch_deleted', id: o.id, project: o.project };
  if (o.type === 'batch' && typeof o.status === 'string' && STATUSES.has(o.status)) {
    return { type: 'batch', id: o.id, project: o.project, status: o.status as BatchStatus };
  }
  return null;
}
