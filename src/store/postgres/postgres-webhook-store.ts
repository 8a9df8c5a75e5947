import type pg from 'pg';

import type { BatchStatus, Page } from '../../domain/index.js';
import { attemptParams, claimedEndpoint, endpointToParams, rowToDelivery, rowToEndpoint, wantsEvent } from '../sql/webhook-rows.js';
import {
  type AttemptRecord,
  type ClaimedDelivery,
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
import { Db, transaction } from './pg-db.js';
import { WEBHOOKS } from './webhook-statements.js';

/**
 * WebhookStore on PostgreSQL (see webhook-store.ts), shared by every replica: claims take due rows
 * FOR UPDATE SKIP LOCKED, so two replicas claiming at once never get the same delivery; every time
 * is the database server's clock.
 */
export class PostgresWebhookStore implements WebhookStore {
  readonly #pool: pg.Pool;
  readonly #db: Db;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
    this.#db = new Db(pool);
  }

  /**
   * Queues the event's deliveries on `db`, the caller's transaction (the terminal transition, or
   * the expiry of a waiting batch): one per endpoint of the batch's project that wants this type.
   */
  async queue(db: Db, event: WebhookEvent): Promise<void> {
    const endpoints = (await db.all(WEBHOOKS.endpointsOfBatch, { batch_id: event.objectId })).filter((e) => wantsEvent(e.events, event.type));
    if (endpoints.length === 0) return;
    const payload = eventPayload(event);
    await db.run(WEBHOOKS.insertDeliveries, {
      id: endpoints.map(() => newWebhookDeliveryId()),
      endpoint_id: endpoints.map((e) => e.id),
      project: endpoints.map((e) => e.project),
      event_id: event.id,
      type: event.type,
      payload,
      created_at: event.createdAt,
    });
  }

  /** Queues the deliveries of a batch entering terminal `status` at `at` (unix seconds), on the caller's transaction. */
  async queueTerminal(db: Db, batchId: string, status: BatchStatus, at: number): Promise<void> {
    const event = terminalWebhookEvent(batchId, status, at);
    if (event) await this.queue(db, event);
  }

  async createEndpoint(e: WebhookEndpointRecord): Promise<void> {
    await this.#db.run(WEBHOOKS.insertEndpoint, endpointToParams(e));
  }

  async getEndpoint(id: string): Promise<WebhookEndpointRecord | null> {
    const r = await this.#db.get(WEBHOOKS.getEndpoint, { id });
    return r === undefined ? null : rowToEndpoint(r);
  }

  async listEndpoints(q: ListEndpointsQuery): Promise<Page<WebhookEndpointRecord>> {
    const limit = whole(q.limit);
    const rows = await this.#db.all(q.order === 'asc' ? WEBHOOKS.listEndpointsAsc : WEBHOOKS.listEndpointsDesc, {
      project: q.project ?? null,
      after: q.after ?? null,
      limit: limit + 1,
    });
    return { data: rows.slice(0, limit).map(rowToEndpoint), hasMore: rows.length > limit };
  }

  async deleteEndpoint(id: string): Promise<boolean> {
    return transaction(this.#pool, async (db) => {
      // The endpoint row first: a transition queueing to it meanwhile waits for this write (its
      // insert reads the row FOR SHARE) and then finds it gone.
      const removed = (await db.run(WEBHOOKS.deleteEndpoint, { id })) > 0;
      await db.run(WEBHOOKS.deleteDeliveriesOf, { endpoint_id: id });
      return removed;
    });
  }

  async rotateSecret(id: string, secret: string, previousExpiresAt: number): Promise<WebhookEndpointRecord | null> {
    const r = await this.#db.get(WEBHOOKS.rotate, { id, secret, expires_at: previousExpiresAt });
    return r === undefined ? null : rowToEndpoint(r);
  }

  async queueTest(endpointId: string, createdAt: number): Promise<WebhookDeliveryRecord | null> {
    const eventId = newEventId();
    const r = await this.#db.get(WEBHOOKS.insertTest, {
      id: newWebhookDeliveryId(),
      endpoint_id: endpointId,
      event_id: eventId,
      type: WEBHOOK_TEST_EVENT_TYPE,
      payload: eventPayload({ id: eventId, type: WEBHOOK_TEST_EVENT_TYPE, createdAt, objectId: endpointId }),
      created_at: createdAt,
    });
    return r === undefined ? null : rowToDelivery(r);
  }

  async claimDue(owner: string, leaseMs: number, limit: number): Promise<ClaimedDelivery[]> {
    if (whole(limit) === 0) return [];
    const rows = await this.#db.all(WEBHOOKS.claim, { owner, lease_ms: Math.ceil(leaseMs), limit: whole(limit) });
    return rows.map((r) => ({ delivery: rowToDelivery(r), endpoint: claimedEndpoint(r), fence: { id: r.id, owner, epoch: r.lease_epoch } }));
  }

  async recordAttempt(fence: DeliveryFence, attempt: AttemptRecord): Promise<boolean> {
    return (await this.#db.run(WEBHOOKS.record, { ...fence, ...attemptParams(attempt) })) > 0;
  }

  async releaseDelivery(fence: DeliveryFence): Promise<boolean> {
    return (await this.#db.run(WEBHOOKS.release, fence)) > 0;
  }

  async nextDueInMs(): Promise<number | null> {
    return (await this.#db.get(WEBHOOKS.nextDue, {}))?.in_ms ?? null;
  }

  async getDelivery(id: string): Promise<WebhookDeliveryRecord | null> {
    const r = await this.#db.get(WEBHOOKS.getDelivery, { id });
    return r === undefined ? null : rowToDelivery(r);
  }

  async listDeliveries(q: ListDeliveriesQuery): Promise<Page<WebhookDeliveryRecord>> {
    const limit = whole(q.limit);
    const rows = await this.#db.all(WEBHOOKS.listDeliveries, {
      project: q.project ?? null,
      endpoint_id: q.endpointId ?? null,
      status: q.status ?? null,
      after: q.after ?? null,
      limit: limit + 1,
    });
    return { data: rows.slice(0, limit).map(rowToDelivery), hasMore: rows.length > limit };
  }

  async pruneDeliveries(before: number): Promise<number> {
    return this.#db.run(WEBHOOKS.prune, { before });
  }
}

const whole = (n: number): number => Math.max(0, Math.floor(n));
