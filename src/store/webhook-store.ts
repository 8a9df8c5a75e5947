import { type BatchStatus, type Page, randomId } from '../domain/index.js';

/**
 * Webhook endpoints and the durable outbox of their deliveries (OpenAI's webhooks, signed per
 * Standard Webhooks). A batch reaching a terminal status queues one delivery per matching endpoint
 * of its project IN THE SAME WRITE as the status change (TransitionFields.webhookEvent, and the
 * housekeeping's expireUnclaimed), so an event is never lost across a crash; deliveries are claimed
 * under a lease (SKIP LOCKED where the store has it), so each attempt is made by exactly one
 * replica. Owned by `src/store/*-webhook-*`.
 *
 * A delivery's states:
 *
 *   pending ──(claimed: lease owner + epoch, expiry)──► attempt ──► recordAttempt (fenced)
 *      ▲                                                              │  2xx        → delivered
 *      │                                                              │  no 2xx     → pending again, due after the next interval
 *      └──────────── lease expired (a replica died) / released ◄──────┘  last one   → failed
 *
 * Times: `createdAt`, `deliveredAt` and the endpoints' times are unix seconds; `nextAttemptAt` and
 * the leases are ms by the store's own clock (replicas' clocks need not agree).
 */
export type WebhookEventType = 'batch.completed' | 'batch.failed' | 'batch.expired' | 'batch.cancelled';
export const WEBHOOK_EVENT_TYPES: readonly WebhookEventType[] = ['batch.completed', 'batch.failed', 'batch.expired', 'batch.cancelled'];

/** The type of the event `POST /v1/webhook_endpoints/{id}/test` sends (to that endpoint only, whatever its `events`). */
export const WEBHOOK_TEST_EVENT_TYPE = 'webhook_endpoint.test';
export type DeliveryEventType = WebhookEventType | typeof WEBHOOK_TEST_EVENT_TYPE;

/** The event a terminal transition emits (the thin OpenAI event: the batch id only). */
export interface WebhookEvent {
  /** `evt_…` */
  id: string;
  type: WebhookEventType;
  /** unix seconds */
  createdAt: number;
  /**
   * The batch id (`data.id`). The deliveries go to the endpoints of the batch's project, read in
   * the same write.
   */
  objectId: string;
}

export const newEventId = (): string => `evt_${randomId()}`;
export const newWebhookEndpointId = (): string => `whep_${randomId()}`;
/** A delivery's id is its `webhook-id` header: the same for every attempt of one event to one endpoint. */
export const newWebhookDeliveryId = (): string => `wh_${randomId()}`;

const TERMINAL_EVENT: Partial<Record<BatchStatus, WebhookEventType>> = {
  completed: 'batch.completed',
  failed: 'batch.failed',
  expired: 'batch.expired',
  cancelled: 'batch.cancelled',
};

/** The event a batch entering `status` at `at` (unix seconds) sends; undefined for a status that is not terminal. */
export function terminalWebhookEvent(batchId: string, status: BatchStatus, at: number): WebhookEvent | undefined {
  const type = TERMINAL_EVENT[status];
  return type === undefined ? undefined : { id: newEventId(), type, createdAt: at, objectId: batchId };
}

/** The exact body every attempt of a delivery sends (stored once, so retries send the same bytes). */
export function eventPayload(e: { id: string; type: DeliveryEventType; createdAt: number; objectId: string }): string {
  return JSON.stringify({ id: e.id, object: 'event', type: e.type, created_at: e.createdAt, data: { id: e.objectId } });
}

export interface WebhookEndpointRecord {
  /** `whep_…` */
  id: string;
  project: string;
  url: string;
  /** The event types sent; null = every batch event. */
  events: WebhookEventType[] | null;
  /** `whsec_…` (base64 key): signs every attempt. */
  secret: string;
  /** The secret before the last rotation: also signs until `previousSecretExpiresAt` (unix seconds). */
  previousSecret: string | null;
  previousSecretExpiresAt: number | null;
  createdAt: number;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';
export const DELIVERY_STATUSES: readonly DeliveryStatus[] = ['pending', 'delivered', 'failed'];

export interface WebhookDeliveryRecord {
  /** `wh_…`, sent as `webhook-id`. */
  id: string;
  eventId: string;
  endpointId: string;
  project: string;
  type: DeliveryEventType;
  /** The request body, byte for byte. */
  payload: string;
  createdAt: number;
  status: DeliveryStatus;
  /** Attempts made so far (recorded ones). */
  attempts: number;
  /** ms by the store's clock: when the next attempt is due (meaningful while pending). */
  nextAttemptAt: number;
  /** HTTP status of the last attempt; null when it got no answer (or none was made). */
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: number | null;
}

/** Names a delivery lease: an attempt is recorded only while it is still held. */
export interface DeliveryFence {
  id: string;
  owner: string;
  epoch: number;
}

export interface ClaimedDelivery {
  delivery: WebhookDeliveryRecord;
  endpoint: WebhookEndpointRecord;
  fence: DeliveryFence;
}

/** What one attempt ended with, and what follows. */
export interface AttemptRecord {
  /** The answer's HTTP status; null when there was none (refused, timed out, unreachable). */
  statusCode: number | null;
  error: string | null;
  /** delivered: a 2xx; retry: again after `retryInMs`; failed: that was the last attempt. */
  next: { kind: 'delivered' } | { kind: 'retry'; retryInMs: number } | { kind: 'failed' };
}

export interface ListEndpointsQuery {
  /** Only this project's; undefined = every project. */
  project?: string | undefined;
  limit: number;
  /** An endpoint id (cursor): the page starts after it. */
  after?: string | undefined;
  order: 'asc' | 'desc';
}

/** Newest first. */
export interface ListDeliveriesQuery {
  project?: string | undefined;
  endpointId?: string | undefined;
  status?: DeliveryStatus | undefined;
  limit: number;
  /** A delivery id (cursor). */
  after?: string | undefined;
}

export interface WebhookStore {
  // ── endpoints ────────────────────────────────────────────────────────────────────────────────
  createEndpoint(e: WebhookEndpointRecord): Promise<void>;
  getEndpoint(id: string): Promise<WebhookEndpointRecord | null>;
  listEndpoints(q: ListEndpointsQuery): Promise<Page<WebhookEndpointRecord>>;
  /** Removes the endpoint and every delivery of it, in one write. False when there was none. */
  deleteEndpoint(id: string): Promise<boolean>;
  /**
   * A new secret: the current one becomes the previous one (still signing until
   * `previousExpiresAt`, unix seconds; a previous one before it is dropped). Null when there is no
   * such endpoint.
   */
  rotateSecret(id: string, secret: string, previousExpiresAt: number): Promise<WebhookEndpointRecord | null>;
  /** Queues a test event to this endpoint only (due now). Null when there is no such endpoint. */
  queueTest(endpointId: string, createdAt: number): Promise<WebhookDeliveryRecord | null>;

  // ── the outbox ───────────────────────────────────────────────────────────────────────────────
  /**
   * Takes up to `limit` pending deliveries that are due and not leased (or whose lease expired),
   * oldest due first, each under a lease of `leaseMs` with its epoch raised by one. Concurrent
   * claimers (other replicas) never get the same delivery.
   */
  claimDue(owner: string, leaseMs: number, limit: number): Promise<ClaimedDelivery[]>;
  /** Records an attempt, fenced by the lease (false: the lease was lost, nothing changed), and frees the lease. */
  recordAttempt(fence: DeliveryFence, attempt: AttemptRecord): Promise<boolean>;
  /** Gives the lease back without counting an attempt (shutdown): due again at once. */
  releaseDelivery(fence: DeliveryFence): Promise<boolean>;
  /** ms until the earliest pending, unleased delivery is due (0: due now); null when there is none. */
  nextDueInMs(): Promise<number | null>;
  getDelivery(id: string): Promise<WebhookDeliveryRecord | null>;
  listDeliveries(q: ListDeliveriesQuery): Promise<Page<WebhookDeliveryRecord>>;
  /** Forgets delivered and failed deliveries created before `before` (unix seconds). Returns how many. */
  pruneDeliveries(before: number): Promise<number>;
}
