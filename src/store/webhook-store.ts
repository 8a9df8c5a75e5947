/**
 * Webhook endpoints and the durable outbox of their deliveries (OpenAI's webhooks, signed per
 * Standard Webhooks). A batch reaching a terminal status queues one delivery per matching endpoint
 * of its project IN THE SAME WRITE as the status change (TransitionFields.webhookEvent), so an
 * event is never lost across a crash; deliveries are claimed under a lease (SKIP LOCKED where the
 * store has it), so each attempt is made by exactly one replica. Owned by `src/store/*-webhook-*`.
 */
export type WebhookEventType = 'batch.completed' | 'batch.failed' | 'batch.expired' | 'batch.cancelled';
export const WEBHOOK_EVENT_TYPES: readonly WebhookEventType[] = ['batch.completed', 'batch.failed', 'batch.expired', 'batch.cancelled'];

/** The event a terminal transition emits (the thin OpenAI event: the batch id only). */
export interface WebhookEvent {
  /** `evt_…` */
  id: string;
  type: WebhookEventType;
  /** unix seconds */
  createdAt: number;
  project: string;
  /** The batch id (`data.id`). */
  objectId: string;
}

export interface WebhookStore {
  // Filled in by the webhooks work: endpoints (create, get, list, delete, rotate the secret with
  // the previous one kept for 24 h), the outbox (claim due deliveries under a lease, record an
  // attempt fenced by the lease, list deliveries), and test events.
  readonly ready: true;
}
