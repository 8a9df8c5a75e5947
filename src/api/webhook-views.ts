import { InvalidRequestError, NotFoundError, printableId } from '../domain/index.js';
import { DELIVERY_STATUSES, type DeliveryStatus, WEBHOOK_EVENT_TYPES, type WebhookDeliveryRecord, type WebhookEndpointRecord, type WebhookEventType } from '../store/webhook-store.js';

/** The API objects of webhook endpoints and deliveries, and the parsing of their requests. */

/** A webhook endpoint as the API shows it: never its secret (but on create and rotate, added by the route). */
export function serializeEndpoint(e: WebhookEndpointRecord, now: number): Record<string, unknown> {
  const previousLive = e.previousSecret !== null && (e.previousSecretExpiresAt ?? 0) > now;
  return {
    id: e.id,
    object: 'webhook_endpoint',
    url: e.url,
    events: e.events ?? [...WEBHOOK_EVENT_TYPES],
    project: e.project,
    created_at: e.createdAt,
    // While the old secret still signs (24 h after a rotation): when it stops.
    previous_secret_expires_at: previousLive ? e.previousSecretExpiresAt : null,
  };
}

/** A delivery (one event to one endpoint) with the state of its attempts. */
export function serializeDelivery(d: WebhookDeliveryRecord, maxAttempts: number): Record<string, unknown> {
  return {
    id: d.id,
    object: 'webhook_delivery',
    endpoint_id: d.endpointId,
    event_id: d.eventId,
    event_type: d.type,
    data: { id: dataId(d.payload) },
    project: d.project,
    status: d.status,
    attempts: d.attempts,
    max_attempts: maxAttempts,
    next_attempt_at: d.status === 'pending' ? Math.ceil(d.nextAttemptAt / 1000) : null,
    last_status_code: d.lastStatus,
    last_error: d.lastError,
    created_at: d.createdAt,
    delivered_at: d.deliveredAt,
  };
}

function dataId(payload: string): string | null {
  try {
    const id = (JSON.parse(payload) as { data?: { id?: unknown } }).data?.id;
    return typeof id === 'string' ? id : null;
  } catch {
    return null;
  }
}

const ENDPOINT_ID = /^whep_[0-9A-Za-z]{1,64}$/;
const DELIVERY_ID = /^wh_[0-9A-Za-z]{1,64}$/;
export const isEndpointId = (id: string): boolean => ENDPOINT_ID.test(id);
export const isDeliveryId = (id: string): boolean => DELIVERY_ID.test(id);

export const endpointNotFound = (id: string): NotFoundError =>
  new NotFoundError(`No webhook endpoint found with id '${printableId(id)}'.`, { param: 'webhook_endpoint_id', code: 'webhook_endpoint_not_found' });

export const deliveryNotFound = (id: string): NotFoundError =>
  new NotFoundError(`No webhook delivery found with id '${printableId(id)}'.`, { param: 'webhook_delivery_id', code: 'webhook_delivery_not_found' });

const CREATE_FIELDS = new Set(['url', 'events']);

/** The body of `POST /v1/webhook_endpoints`: `url`, and optionally `events` (null or absent: every batch event). */
export function parseCreateBody(body: unknown): { url: string; events: WebhookEventType[] | null } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidRequestError('The request body must be a JSON object: {"url": "https://…", "events": ["batch.completed", …]}.', { code: 'invalid_type' });
  }
  const fields = body as Record<string, unknown>;
  for (const k of Object.keys(fields)) {
    if (!CREATE_FIELDS.has(k)) {
      throw new InvalidRequestError(`Unknown parameter: '${printableId(k)}'. A webhook endpoint takes 'url' and 'events'.`, { param: printableId(k), code: 'unknown_parameter' });
    }
  }
  const { url, events } = fields;
  if (url === undefined || url === null || url === '') throw new InvalidRequestError("Missing required parameter: 'url'.", { param: 'url', code: 'missing_required_parameter' });
  if (typeof url !== 'string') throw new InvalidRequestError("'url' must be a string.", { param: 'url', code: 'invalid_type' });
  return { url, events: parseEvents(events) };
}

function parseEvents(events: unknown): WebhookEventType[] | null {
  if (events === undefined || events === null) return null;
  if (!Array.isArray(events) || events.some((e) => typeof e !== 'string')) {
    throw new InvalidRequestError("'events' must be an array of event types.", { param: 'events', code: 'invalid_type' });
  }
  if (events.length === 0) throw new InvalidRequestError(`'events' must name at least one of ${WEBHOOK_EVENT_TYPES.join(', ')} (or be left out for all).`, { param: 'events', code: 'invalid_value' });
  const unknown = (events as string[]).filter((e) => !(WEBHOOK_EVENT_TYPES as readonly string[]).includes(e));
  if (unknown.length > 0) {
    throw new InvalidRequestError(`Unknown event type '${printableId(unknown[0]!)}': expected ${WEBHOOK_EVENT_TYPES.join(', ')}.`, { param: 'events', code: 'invalid_value' });
  }
  return [...new Set(events as WebhookEventType[])];
}

/** `?status=` of a deliveries list. */
export function parseDeliveryStatus(raw: unknown): DeliveryStatus | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw === 'string' && (DELIVERY_STATUSES as readonly string[]).includes(raw)) return raw as DeliveryStatus;
  throw new InvalidRequestError(`Invalid 'status': expected one of ${DELIVERY_STATUSES.join(', ')}.`, { param: 'status', code: 'invalid_value' });
}

/** `?after=` (or another id parameter) that must be one of our ids of this kind. */
export function parseIdParam(raw: unknown, param: string, isId: (s: string) => boolean, prefix: string): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw === 'string' && isId(raw)) return raw;
  throw new InvalidRequestError(`Invalid '${param}': expected an id starting with '${prefix}'.`, { param, code: 'invalid_value' });
}
