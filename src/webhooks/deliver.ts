import { Agent, request } from 'undici';

import { DestinationError, type DestinationPolicy, hostOf, parseWebhookUrl } from './destination.js';
import { parseIp } from './ip-address.js';

/** How one attempt ended: the answer's status, or why there was none. */
export interface PostResult {
  statusCode: number | null;
  /** Null for a 2xx; otherwise a short reason fit for the delivery's `last_error` (never a secret, never the URL's path). */
  error: string | null;
  /** The attempt was cut short by `signal` (shutdown): it does not count. */
  aborted: boolean;
}

/** Most bytes of an answer read (and thrown away) before the connection is given up. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * Sends webhook attempts: one undici Agent whose connector resolves every host through the
 * destination policy (so each connection goes to an address that was checked), keep-alive between
 * attempts to the same origin, no redirects followed, no proxy.
 */
export class WebhookSender {
  readonly #policy: DestinationPolicy;
  readonly #agent: Agent;
  readonly #timeoutMs: number;

  constructor(policy: DestinationPolicy, timeoutMs: number) {
    this.#policy = policy;
    this.#timeoutMs = timeoutMs;
    this.#agent = new Agent({
      connect: { lookup: policy.lookup, timeout: timeoutMs },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      keepAliveTimeout: 4_000,
      connections: 8,
    });
  }

  /** POSTs `body` with `headers` to `rawUrl` within the timeout. Never rejects. */
  async post(rawUrl: string, body: string, headers: Record<string, string>, signal?: AbortSignal): Promise<PostResult> {
    const deadline = AbortSignal.timeout(this.#timeoutMs);
    const stop = signal ? AbortSignal.any([signal, deadline]) : deadline;
    try {
      const url = parseWebhookUrl(rawUrl);
      // An IP literal is connected to without a lookup: it is checked here instead.
      if (parseIp(hostOf(url)) !== null) await this.#policy.resolveChecked(hostOf(url));
      const res = await request(url, {
        method: 'POST',
        dispatcher: this.#agent,
        headers: { 'content-type': 'application/json', 'user-agent': 'BESH-Webhooks/1.0', ...headers },
        body,
        signal: stop,
      });
      await res.body.dump({ limit: MAX_ANSWER_BYTES }).catch(() => undefined);
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      return { statusCode: res.statusCode, error: ok ? null : `HTTP ${res.statusCode}`, aborted: false };
    } catch (err) {
      if (signal?.aborted) return { statusCode: null, error: 'aborted at shutdown', aborted: true };
      return { statusCode: null, error: describe(err, deadline.aborted, this.#timeoutMs), aborted: false };
    }
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}

/** A failure in a few words, from its code, never from parsing a message. */
function describe(err: unknown, timedOut: boolean, timeoutMs: number): string {
  if (timedOut) return `timed out after ${timeoutMs} ms`;
  if (err instanceof DestinationError) return `destination refused: ${err.message}`;
  const e = err as { code?: string; cause?: { code?: string }; message?: string };
  const code = e.code ?? e.cause?.code;
  switch (code) {
    case 'EDESTINATIONNOTALLOWED':
      return `destination refused: ${e.message ?? 'not allowed'}`;
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection reset';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return `timed out after ${timeoutMs} ms`;
    case 'CERT_HAS_EXPIRED':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
      return `TLS: ${code}`;
    default:
      return code ? `request failed (${code})` : 'request failed';
  }
}
