import {
  type DeliveryEventType,
  type DeliveryStatus,
  WEBHOOK_EVENT_TYPES,
  type WebhookDeliveryRecord,
  type WebhookEndpointRecord,
  type WebhookEventType,
} from '../webhook-store.js';

// The rows of `webhook_endpoints` and `webhook_deliveries` (migration 6 on SQLite, 2 on
// PostgreSQL) as both dialects return them (integers as JS numbers), and their mapping.

export interface EndpointRow {
  seq: number;
  id: string;
  project: string;
  url: string;
  /** JSON array of event types; NULL = every batch event. */
  events: string | null;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: number | null;
  created_at: number;
}

export type EndpointParams = Omit<EndpointRow, 'seq'>;

export interface DeliveryRow {
  seq: number;
  id: string;
  event_id: string;
  endpoint_id: string;
  project: string;
  type: string;
  payload: string;
  created_at: number;
  status: string;
  attempts: number;
  next_attempt_at: number;
  last_status: number | null;
  last_error: string | null;
  delivered_at: number | null;
  lease_owner: string | null;
  lease_epoch: number;
  lease_expires_at: number | null;
}

/** A claimed delivery joined with its endpoint's columns (prefixed `ep_`). */
export interface ClaimedRow extends DeliveryRow {
  ep_project: string;
  ep_url: string;
  ep_events: string | null;
  ep_secret: string;
  ep_previous_secret: string | null;
  ep_previous_secret_expires_at: number | null;
  ep_created_at: number;
  ep_seq: number;
}

/** The endpoint columns a claim selects (alias `e`), matching ClaimedRow. */
export const CLAIMED_ENDPOINT_COLUMNS = `e.project AS ep_project, e.url AS ep_url, e.events AS ep_events, e.secret AS ep_secret,
  e.previous_secret AS ep_previous_secret, e.previous_secret_expires_at AS ep_previous_secret_expires_at,
  e.created_at AS ep_created_at, e.seq AS ep_seq`;

/** The longest error text kept on a delivery. */
const MAX_ERROR_CHARS = 500;
export const clipError = (e: string | null): string | null => (e === null ? null : e.length > MAX_ERROR_CHARS ? `${e.slice(0, MAX_ERROR_CHARS - 1)}…` : e);

export function endpointToParams(e: WebhookEndpointRecord): EndpointParams {
  return {
    id: e.id,
    project: e.project,
    url: e.url,
    events: e.events === null ? null : JSON.stringify(e.events),
    secret: e.secret,
    previous_secret: e.previousSecret,
    previous_secret_expires_at: e.previousSecretExpiresAt,
    created_at: e.createdAt,
  };
}

export function rowToEndpoint(r: EndpointRow): WebhookEndpointRecord {
  return {
    id: r.id,
    project: r.project,
    url: r.url,
    events: parseEvents(r.events),
    secret: r.secret,
    previousSecret: r.previous_secret,
    previousSecretExpiresAt: r.previous_secret_expires_at,
    createdAt: r.created_at,
  };
}

export function rowToDelivery(r: DeliveryRow): WebhookDeliveryRecord {
  return {
    id: r.id,
    eventId: r.event_id,
    endpointId: r.endpoint_id,
    project: r.project,
    // These columns only ever hold values of the matching unions.
    type: r.type as DeliveryEventType,
    payload: r.payload,
    createdAt: r.created_at,
    status: r.status as DeliveryStatus,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    lastStatus: r.last_status,
    lastError: r.last_error,
    deliveredAt: r.delivered_at,
  };
}

export function claimedEndpoint(r: ClaimedRow): WebhookEndpointRecord {
  return rowToEndpoint({
    seq: r.ep_seq,
    id: r.endpoint_id,
    project: r.ep_project,
    url: r.ep_url,
    events: r.ep_events,
    secret: r.ep_secret,
    previous_secret: r.ep_previous_secret,
    previous_secret_expires_at: r.ep_previous_secret_expires_at,
    created_at: r.ep_created_at,
  });
}

function parseEvents(text: string | null): WebhookEventType[] | null {
  if (text === null) return null;
  const parsed = JSON.parse(text) as unknown;
  return Array.isArray(parsed) ? parsed.filter((t): t is WebhookEventType => (WEBHOOK_EVENT_TYPES as readonly unknown[]).includes(t)) : null;
}

/** Does an endpoint with these `events` (JSON text, NULL = all) want this event? */
export const wantsEvent = (events: string | null, type: WebhookEventType): boolean => {
  const list = parseEvents(events);
  return list === null || list.includes(type);
};

/** The values of an attempt's UPDATE: the outcome flattened to columns. */
export function attemptParams(a: {
  statusCode: number | null;
  error: string | null;
  next: { kind: 'delivered' } | { kind: 'retry'; retryInMs: number } | { kind: 'failed' };
}): { status: DeliveryStatus; last_status: number | null; last_error: string | null; retry_in_ms: number; delivered: number } {
  const status: DeliveryStatus = a.next.kind === 'retry' ? 'pending' : a.next.kind;
  return {
    status,
    last_status: a.statusCode,
    last_error: clipError(a.error),
    retry_in_ms: a.next.kind === 'retry' ? Math.max(0, Math.ceil(a.next.retryInMs)) : 0,
    delivered: a.next.kind === 'delivered' ? 1 : 0,
  };
}
