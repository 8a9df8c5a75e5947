import { expect } from 'vitest';

import type { BeshProcess } from '../helpers/besh-process.js';
import { api } from '../helpers/keys.js';
import type { Received } from './receiver.js';

/** Fast webhooks for tests: receivers on 127.0.0.1 allowed, a short retry schedule, a quick poll. */
export const WEBHOOK_ENV: Record<string, string> = {
  BESH_WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
  BESH_WEBHOOK_RETRY_SCHEDULE: '300ms,700ms,1200ms',
  BESH_WEBHOOK_TIMEOUT_MS: '2000',
  BESH_WEBHOOK_POLL_MS: '50',
};

export interface Endpoint {
  id: string;
  url: string;
  events: string[];
  project: string;
  secret: string;
  previous_secret_expires_at: number | null;
}

/** `POST /v1/webhook_endpoints` (201-ish: 200 with the secret), asserted to succeed. */
export async function createEndpoint(besh: BeshProcess, url: string, opts: { key?: string; events?: string[] } = {}): Promise<Endpoint> {
  const r = await api(besh, '/v1/webhook_endpoints', { key: opts.key, json: { url, ...(opts.events ? { events: opts.events } : {}) } });
  expect(r.status, r.text).toBe(200);
  expect(r.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
  return r.body as Endpoint;
}

export interface Delivery {
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  data: { id: string | null };
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  max_attempts: number;
  next_attempt_at: number | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: number;
  delivered_at: number | null;
}

export async function deliveriesOf(besh: BeshProcess, endpointId: string, key?: string): Promise<Delivery[]> {
  const r = await api(besh, `/v1/webhook_endpoints/${endpointId}/deliveries?limit=100`, { key });
  expect(r.status, r.text).toBe(200);
  return r.body.data as Delivery[];
}

/** Polls the delivery until `pred` holds. */
export async function waitDelivery(besh: BeshProcess, id: string, pred: (d: Delivery) => boolean, opts: { key?: string; timeoutMs?: number } = {}): Promise<Delivery> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    const r = await api(besh, `/v1/webhook_deliveries/${id}`, { key: opts.key });
    if (r.status === 200 && pred(r.body as Delivery)) return r.body as Delivery;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for delivery ${id}: ${r.text}`);
    await new Promise((res) => setTimeout(res, 30));
  }
}

/** The thin OpenAI event, exactly: `{id: evt_…, object: event, type, created_at, data: {id}}`, in that order. */
export function expectThinEvent(r: Received, type: string, objectId: string): void {
  expect(Object.keys(r.event)).toEqual(['id', 'object', 'type', 'created_at', 'data']);
  expect(r.event).toEqual({ id: expect.stringMatching(/^evt_[0-9A-Za-z]+$/), object: 'event', type, created_at: expect.any(Number), data: { id: objectId } });
  expect(Math.abs(r.event.created_at - Date.now() / 1000)).toBeLessThan(120);
  expect(r.headers['content-type']).toBe('application/json');
  expect(r.webhookId).toMatch(/^wh_[0-9A-Za-z]+$/);
  expect(Math.abs(r.timestamp - Date.now() / 1000)).toBeLessThan(60);
}

/** Verified with `secret` by both the openai SDK and standardwebhooks. */
export function expectVerified(r: Received, secret: string): void {
  expect(r.verifiedBy, r.failures.join('\n')).toContain(secret);
}
