import type { Connection } from './connection.js';
import { ApiError, apiError, CliError, networkReason, unreachable } from './errors.js';
import type { ListPage } from './types.js';

/** A webhook endpoint as the API shows it (`secret` only in the answers of create and rotate). */
export interface WebhookEndpointObject {
  id: string;
  object: 'webhook_endpoint';
  url: string;
  events: string[];
  project: string;
  created_at: number;
  previous_secret_expires_at: number | null;
  secret?: string;
}

export interface WebhookDeliveryObject {
  id: string;
  object: 'webhook_delivery';
  endpoint_id: string;
  event_id: string;
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
  delivered_at: number | null;
}

type Method = 'GET' | 'POST' | 'DELETE';

/** The webhook routes of the BESH API, as `besh webhooks` uses them (over fetch, errors as CliErrors). */
export class WebhooksClient {
  constructor(readonly conn: Connection) {}

  create(params: { url: string; events?: string[] }): Promise<WebhookEndpointObject> {
    return this.#json('POST', '/webhook_endpoints', { json: params });
  }

  get(id: string): Promise<WebhookEndpointObject> {
    return this.#json('GET', `/webhook_endpoints/${encodeURIComponent(id)}`, { endpoint: id });
  }

  delete(id: string): Promise<{ id: string; deleted: boolean }> {
    return this.#json('DELETE', `/webhook_endpoints/${encodeURIComponent(id)}`, { endpoint: id });
  }

  rotate(id: string): Promise<WebhookEndpointObject> {
    return this.#json('POST', `/webhook_endpoints/${encodeURIComponent(id)}/rotate_secret`, { endpoint: id });
  }

  test(id: string): Promise<WebhookDeliveryObject> {
    return this.#json('POST', `/webhook_endpoints/${encodeURIComponent(id)}/test`, { endpoint: id });
  }

  async *list(project?: string): AsyncGenerator<WebhookEndpointObject> {
    yield* this.#paginate<WebhookEndpointObject>('/webhook_endpoints', { limit: 100, order: 'asc', project });
  }

  /** Deliveries, newest first: of one endpoint, or of every endpoint in view; at most `max`. */
  async deliveries(opts: { endpointId?: string; status?: string; project?: string; max: number }): Promise<WebhookDeliveryObject[]> {
    const path = opts.endpointId === undefined ? '/webhook_deliveries' : `/webhook_endpoints/${encodeURIComponent(opts.endpointId)}/deliveries`;
    const out: WebhookDeliveryObject[] = [];
    for await (const d of this.#paginate<WebhookDeliveryObject>(path, { limit: Math.min(100, opts.max), status: opts.status, project: opts.project }, opts.endpointId)) {
      out.push(d);
      if (out.length >= opts.max) break;
    }
    return out;
  }

  async *#paginate<T extends { id: string }>(path: string, query: Record<string, string | number | undefined>, endpoint?: string): AsyncGenerator<T> {
    let after: string | undefined;
    for (;;) {
      const page = await this.#json<ListPage<T>>('GET', path, { query: { ...query, after }, endpoint });
      for (const item of page.data) yield item;
      const last = page.data[page.data.length - 1];
      if (!page.has_more || !last) return;
      after = last.id;
    }
  }

  async #json<T>(method: Method, path: string, opts: { query?: Record<string, string | number | undefined>; json?: unknown; endpoint?: string | undefined } = {}): Promise<T> {
    const url = new URL(`${this.conn.baseUrl}${path}`);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'besh-cli' };
    if (this.conn.apiKey) headers.authorization = `Bearer ${this.conn.apiKey}`;
    let body: string | undefined;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['content-type'] = 'application/json';
    }
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body });
    } catch (err) {
      if (networkReason(err)) throw unreachable(this.conn.baseUrl, err);
      throw new CliError(`${method} ${url.href} failed: ${(err as Error).message}`);
    }
    const text = await res.text();
    if (res.status >= 400) {
      const e = apiError(res.status, text, { method, path: url.pathname, baseUrl: this.conn.baseUrl });
      if (res.status === 404 && opts.endpoint !== undefined && e.code === 'webhook_endpoint_not_found') {
        throw new ApiError(`No webhook endpoint found with id ${opts.endpoint}`, 404, e.code);
      }
      throw e;
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`${this.conn.baseUrl} answered ${method} ${path} with something that is not JSON: ${text.slice(0, 120)}`);
    }
  }
}
