import { getJson, scoped } from './api.js';
import { byId, h } from './dom.js';
import { dateTime as time } from './format.js';

/** The webhooks panel (read-only): endpoints in view and their most recent deliveries. */

interface Endpoint {
  id: string;
  url: string;
  events: string[];
  project: string;
  created_at: number;
  previous_secret_expires_at: number | null;
}

interface Delivery {
  id: string;
  endpoint_id: string;
  event_type: string;
  data: { id: string | null };
  project: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  max_attempts: number;
  next_attempt_at: number | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: number;
}

interface List<T> {
  data: T[];
}

const ALL_EVENTS = 4;
const RECENT = 15;

const STATUS_CLASS: Record<Delivery['status'], string> = { delivered: 'completed', failed: 'failed', pending: 'in_progress' };

function endpointRow(e: Endpoint): HTMLTableRowElement {
  return h(
    'tr',
    { 'data-id': e.id },
    h('td', {}, h('span', { class: 'mono' }, e.id)),
    h('td', { class: 'url', title: e.url }, e.url),
    h('td', {}, e.events.length === ALL_EVENTS ? 'all batch events' : e.events.join(', ')),
    h('td', { class: 'project' }, e.project),
    h('td', {}, time(e.created_at)),
    h('td', {}, e.previous_secret_expires_at === null ? '' : `rotated · old secret until ${time(e.previous_secret_expires_at)}`),
  );
}

function deliveryRow(d: Delivery): HTMLTableRowElement {
  const next = d.status === 'pending' && d.attempts > 0 && d.next_attempt_at !== null ? ` · next ${time(d.next_attempt_at)}` : '';
  return h(
    'tr',
    { 'data-id': d.id },
    h('td', {}, h('span', { class: 'mono' }, d.id)),
    h('td', {}, h('span', { class: 'mono' }, d.endpoint_id)),
    h('td', {}, d.event_type),
    h('td', {}, h('span', { class: 'mono' }, d.data.id ?? '')),
    h('td', {}, h('span', { class: `status ${STATUS_CLASS[d.status]}` }, d.status), next),
    h('td', { class: 'attempts' }, `${d.attempts}/${d.max_attempts}`),
    h('td', { class: 'http' }, d.last_status_code === null ? '–' : String(d.last_status_code)),
    h('td', { class: 'err', title: d.last_error ?? '' }, d.last_error ?? ''),
    h('td', {}, time(d.created_at)),
  );
}

/** Loads both lists; `current()` says whether the view is still the one asked for (late answers are dropped). */
export async function refreshWebhooks(current: () => boolean): Promise<void> {
  const [endpoints, deliveries] = await Promise.all([
    getJson<List<Endpoint>>(scoped('/v1/webhook_endpoints?limit=100')),
    getJson<List<Delivery>>(scoped(`/v1/webhook_deliveries?limit=${RECENT}`)),
  ]);
  if (!current()) return;
  const eRows = byId('wh-endpoints');
  eRows.replaceChildren(...endpoints.data.map(endpointRow));
  if (endpoints.data.length === 0) eRows.append(h('tr', {}, h('td', { colspan: '6' }, 'No webhook endpoints (besh webhooks create URL).')));
  const dRows = byId('wh-deliveries');
  dRows.replaceChildren(...deliveries.data.map(deliveryRow));
  if (deliveries.data.length === 0) dRows.append(h('tr', {}, h('td', { colspan: '9' }, 'No deliveries yet.')));
}

export function clearWebhooks(): void {
  byId('wh-endpoints').replaceChildren();
  byId('wh-deliveries').replaceChildren();
}
