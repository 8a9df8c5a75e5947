import type Database from 'better-sqlite3';

import { type BatchStatus, coerceError, type Page } from '../../domain/index.js';
import {
  attemptParams,
  CLAIMED_ENDPOINT_COLUMNS,
  claimedEndpoint,
  type ClaimedRow,
  type DeliveryRow,
  type EndpointParams,
  type EndpointRow,
  endpointToParams,
  rowToDelivery,
  rowToEndpoint,
  wantsEvent,
} from '../sql/webhook-rows.js';
import {
  type AttemptRecord,
  type ClaimedDelivery,
  type DeliveryEventType,
  type DeliveryFence,
  eventPayload,
  type ListDeliveriesQuery,
  type ListEndpointsQuery,
  newEventId,
  newWebhookDeliveryId,
  terminalWebhookEvent,
  WEBHOOK_TEST_EVENT_TYPE,
  type WebhookDeliveryRecord,
  type WebhookEndpointRecord,
  type WebhookEvent,
  type WebhookStore,
} from '../webhook-store.js';

/** Larger than any `seq`: the cursor of a descending list that starts at the top. */
const SEQ_TOP = Number.MAX_SAFE_INTEGER;

/** Due and claimable: pending, due by `@now`, its lease free or expired, its endpoint still there. */
const CLAIMABLE = `d.status = 'pending' AND d.next_attempt_at <= @now AND (d.lease_owner IS NULL OR d.lease_expires_at <= @now)
  AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id)`;

interface NewDelivery {
  id: string;
  event_id: string;
  endpoint_id: string;
  project: string;
  type: string;
  payload: string;
  created_at: number;
  next_attempt_at: number;
}

/**
 * WebhookStore on the SQLite file (see webhook-store.ts). One process uses the file, so claims
 * never race; they are still single IMMEDIATE transactions, so two connections to one file (the
 * contract's peers) never both take a delivery. `now` is the store's clock (ms), as the meta store's.
 */
export class SqliteWebhookStore implements WebhookStore {
  readonly #db: Database.Database;
  readonly #now: () => number;
  readonly #s: ReturnType<typeof prepare>;

  constructor(db: Database.Database, now: () => number = Date.now) {
    this.#db = db;
    this.#now = now;
    this.#s = prepare(db);
  }

  /**
   * Queues the event's deliveries: one per endpoint of the batch's project that wants this type.
   * Runs inside the caller's transaction (the terminal transition, or the expiry of a waiting batch).
   */
  queue(event: WebhookEvent): void {
    const project = this.#s.batchProject.get(event.objectId);
    if (project === undefined) return;
    const payload = eventPayload(event);
    const now = this.#now();
    for (const e of this.#s.endpointsOf.all(project)) {
      if (!wantsEvent(e.events, event.type)) continue;
      this.#s.insertDelivery.run(newDelivery(e.id, project, event.id, event.type, payload, event.createdAt, now));
    }
  }

  /** Queues the deliveries of a batch entering terminal `status` at `at` (unix seconds); inside the caller's transaction. */
  queueTerminal(batchId: string, status: BatchStatus, at: number): void {
    const event = terminalWebhookEvent(batchId, status, at);
    if (event) this.queue(event);
  }

  createEndpoint(e: WebhookEndpointRecord): Promise<void> {
    return settle(() => {
      this.#s.insertEndpoint.run(endpointToParams(e));
    });
  }

  getEndpoint(id: string): Promise<WebhookEndpointRecord | null> {
    return settle(() => {
      const r = this.#s.getEndpoint.get(id);
      return r === undefined ? null : rowToEndpoint(r);
    });
  }

  listEndpoints(q: ListEndpointsQuery): Promise<Page<WebhookEndpointRecord>> {
    return settle(() => {
      const limit = whole(q.limit);
      const project = q.project ?? null;
      const asc = q.order === 'asc';
      let afterSeq = asc ? 0 : SEQ_TOP;
      if (q.after !== undefined) {
        // A cursor naming another project's endpoint is as unknown as a missing one.
        const seq = this.#s.endpointSeq.get({ id: q.after, project });
        if (seq === undefined) return { data: [], hasMore: false };
        afterSeq = seq;
      }
      const rows = (asc ? this.#s.listEndpointsAsc : this.#s.listEndpointsDesc).all({ project, after_seq: afterSeq, limit: limit + 1 });
      return { data: rows.slice(0, limit).map(rowToEndpoint), hasMore: rows.length > limit };
    });
  }

  deleteEndpoint(id: string): Promise<boolean> {
    return settle(() =>
      this.#db.transaction((): boolean => {
        this.#s.deleteDeliveriesOf.run(id);
        return this.#s.deleteEndpoint.run(id).changes > 0;
      }).immediate(),
    );
  }

  rotateSecret(id: string, secret: string, previousExpiresAt: number): Promise<WebhookEndpointRecord | null> {
    return settle(() => {
      const r = this.#s.rotate.get({ id, secret, expires_at: previousExpiresAt });
      return r === undefined ? null : rowToEndpoint(r);
    });
  }

  queueTest(endpointId: string, createdAt: number): Promise<WebhookDeliveryRecord | null> {
    return settle(() =>
      this.#db.transaction((): WebhookDeliveryRecord | null => {
        const e = this.#s.getEndpoint.get(endpointId);
        if (e === undefined) return null;
        const eventId = newEventId();
        const payload = eventPayload({ id: eventId, type: WEBHOOK_TEST_EVENT_TYPE, createdAt, objectId: e.id });
        const d = newDelivery(e.id, e.project, eventId, WEBHOOK_TEST_EVENT_TYPE, payload, createdAt, this.#now());
        this.#s.insertDelivery.run(d);
        const row = this.#s.getDelivery.get(d.id);
        return row === undefined ? null : rowToDelivery(row);
      }).immediate(),
    );
  }

  claimDue(owner: string, leaseMs: number, limit: number): Promise<ClaimedDelivery[]> {
    return settle(() =>
      this.#db.transaction((): ClaimedDelivery[] => {
        const now = this.#now();
        const ids = this.#s.claim.all({ now, owner, lease: Math.ceil(leaseMs), limit: whole(limit) });
        return ids.flatMap((id) => {
          const r = this.#s.claimed.get(id);
          if (r === undefined) return [];
          return [{ delivery: rowToDelivery(r), endpoint: claimedEndpoint(r), fence: { id: r.id, owner, epoch: r.lease_epoch } }];
        });
      }).immediate(),
    );
  }

  recordAttempt(fence: DeliveryFence, attempt: AttemptRecord): Promise<boolean> {
    return settle(() => {
      const now = this.#now();
      return this.#s.record.run({ ...fence, ...attemptParams(attempt), now, now_s: Math.floor(now / 1000) }).changes > 0;
    });
  }

  releaseDelivery(fence: DeliveryFence): Promise<boolean> {
    return settle(() => this.#s.release.run(fence).changes > 0);
  }

  nextDueInMs(): Promise<number | null> {
    return settle(() => {
      const now = this.#now();
      const due = this.#s.nextDue.get({ now });
      return due === undefined || due === null ? null : Math.max(0, due - now);
    });
  }

  getDelivery(id: string): Promise<WebhookDeliveryRecord | null> {
    return settle(() => {
      const r = this.#s.getDelivery.get(id);
      return r === undefined ? null : rowToDelivery(r);
    });
  }

  listDeliveries(q: ListDeliveriesQuery): Promise<Page<WebhookDeliveryRecord>> {
    return settle(() => {
      const limit = whole(q.limit);
      const filter = { project: q.project ?? null, endpoint_id: q.endpointId ?? null, status: q.status ?? null };
      let afterSeq = SEQ_TOP;
      if (q.after !== undefined) {
        const seq = this.#s.deliverySeq.get({ id: q.after, ...filter });
        if (seq === undefined) return { data: [], hasMore: false };
        afterSeq = seq;
      }
      const rows = this.#s.listDeliveries.all({ ...filter, after_seq: afterSeq, limit: limit + 1 });
      return { data: rows.slice(0, limit).map(rowToDelivery), hasMore: rows.length > limit };
    });
  }

  pruneDeliveries(before: number): Promise<number> {
    return settle(() => this.#s.prune.run({ before }).changes);
  }
}

function newDelivery(endpointId: string, project: string, eventId: string, type: DeliveryEventType, payload: string, createdAt: number, now: number): NewDelivery {
  return { id: newWebhookDeliveryId(), event_id: eventId, endpoint_id: endpointId, project, type, payload, created_at: createdAt, next_attempt_at: now };
}

function prepare(db: Database.Database) {
  const inProject = '(@project IS NULL OR project = @project)';
  const deliveryFilter = `(@project IS NULL OR project = @project) AND (@endpoint_id IS NULL OR endpoint_id = @endpoint_id) AND (@status IS NULL OR status = @status)`;
  type Filter = { project: string | null; endpoint_id: string | null; status: string | null };
  return {
    batchProject: db.prepare<[string], string>('SELECT project FROM batches WHERE id = ?').pluck(),
    endpointsOf: db.prepare<[string], { id: string; events: string | null }>('SELECT id, events FROM webhook_endpoints WHERE project = ? ORDER BY seq'),
    insertDelivery: db.prepare<NewDelivery>(
      `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, project, type, payload, created_at, next_attempt_at)
       VALUES (@id, @event_id, @endpoint_id, @project, @type, @payload, @created_at, @next_attempt_at)`,
    ),
    insertEndpoint: db.prepare<EndpointParams>(
      `INSERT INTO webhook_endpoints (id, project, url, events, secret, previous_secret, previous_secret_expires_at, created_at)
       VALUES (@id, @project, @url, @events, @secret, @previous_secret, @previous_secret_expires_at, @created_at)`,
    ),
    getEndpoint: db.prepare<[string], EndpointRow>('SELECT * FROM webhook_endpoints WHERE id = ?'),
    endpointSeq: db.prepare<{ id: string; project: string | null }, number>(`SELECT seq FROM webhook_endpoints WHERE id = @id AND ${inProject}`).pluck(),
    listEndpointsAsc: db.prepare<{ project: string | null; after_seq: number; limit: number }, EndpointRow>(
      `SELECT * FROM webhook_endpoints WHERE seq > @after_seq AND ${inProject} ORDER BY seq ASC LIMIT @limit`,
    ),
    listEndpointsDesc: db.prepare<{ project: string | null; after_seq: number; limit: number }, EndpointRow>(
      `SELECT * FROM webhook_endpoints WHERE seq < @after_seq AND ${inProject} ORDER BY seq DESC LIMIT @limit`,
    ),
    deleteEndpoint: db.prepare<[string]>('DELETE FROM webhook_endpoints WHERE id = ?'),
    deleteDeliveriesOf: db.prepare<[string]>('DELETE FROM webhook_deliveries WHERE endpoint_id = ?'),
    rotate: db.prepare<{ id: string; secret: string; expires_at: number }, EndpointRow>(
      `UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_expires_at = @expires_at, secret = @secret
       WHERE id = @id RETURNING *`,
    ),
    claim: db
      .prepare<{ now: number; owner: string; lease: number; limit: number }, string>(
        `UPDATE webhook_deliveries SET lease_owner = @owner, lease_epoch = lease_epoch + 1, lease_expires_at = @now + @lease
         WHERE id IN (SELECT d.id FROM webhook_deliveries d WHERE ${CLAIMABLE} ORDER BY d.next_attempt_at, d.seq LIMIT @limit)
         RETURNING id`,
      )
      .pluck(),
    claimed: db.prepare<[string], ClaimedRow>(
      `SELECT d.*, ${CLAIMED_ENDPOINT_COLUMNS} FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = ?`,
    ),
    record: db.prepare<
      DeliveryFence & { status: string; last_status: number | null; last_error: string | null; retry_in_ms: number; delivered: number; now: number; now_s: number }
    >(
      `UPDATE webhook_deliveries SET attempts = attempts + 1, status = @status, last_status = @last_status, last_error = @last_error,
         next_attempt_at = CASE WHEN @status = 'pending' THEN @now + @retry_in_ms ELSE next_attempt_at END,
         delivered_at = CASE WHEN @delivered = 1 THEN @now_s ELSE delivered_at END,
         lease_owner = NULL, lease_expires_at = NULL
       WHERE id = @id AND lease_owner = @owner AND lease_epoch = @epoch AND status = 'pending'`,
    ),
    release: db.prepare<DeliveryFence>(
      `UPDATE webhook_deliveries SET lease_owner = NULL, lease_expires_at = NULL
       WHERE id = @id AND lease_owner = @owner AND lease_epoch = @epoch AND status = 'pending'`,
    ),
    // A delivery leased by a live lease is due when that lease would expire (its holder died), at the earliest.
    nextDue: db
      .prepare<{ now: number }, number | null>(
        `SELECT MIN(CASE WHEN d.lease_owner IS NOT NULL AND d.lease_expires_at > @now THEN MAX(d.next_attempt_at, d.lease_expires_at) ELSE d.next_attempt_at END)
         FROM webhook_deliveries d
         WHERE d.status = 'pending' AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id)`,
      )
      .pluck(),
    getDelivery: db.prepare<[string], DeliveryRow>('SELECT * FROM webhook_deliveries WHERE id = ?'),
    deliverySeq: db.prepare<Filter & { id: string }, number>(`SELECT seq FROM webhook_deliveries WHERE id = @id AND ${deliveryFilter}`).pluck(),
    listDeliveries: db.prepare<Filter & { after_seq: number; limit: number }, DeliveryRow>(
      `SELECT * FROM webhook_deliveries WHERE seq < @after_seq AND ${deliveryFilter} ORDER BY seq DESC LIMIT @limit`,
    ),
    prune: db.prepare<{ before: number }>(
      `DELETE FROM webhook_deliveries
       WHERE (status <> 'pending' AND created_at < @before)
          OR NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = webhook_deliveries.endpoint_id)`,
    ),
  };
}

const whole = (n: number): number => Math.max(0, Math.floor(n));

/** Runs synchronous work as a settled promise: a throw becomes a rejection. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(coerceError(err));
  }
}
