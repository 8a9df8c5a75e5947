import { type Dispatcher, errors as undiciErrors, Pool } from 'undici';

import { parseRetryAfter, type UpstreamOutcome } from './outcome.js';
import { withPriority } from './priority-field.js';

export interface UpstreamClientOptions {
  /** e.g. http://localhost:8000/v1 */
  baseUrl: string;
  apiKey: string | null;
  /** Keep-alive connections to open at most (one request per connection). */
  connections: number;
  requestTimeoutMs: number;
  maxResponseBytes: number;
  /** Send a request's `priority` as a top-level body field (a vLLM run with `--scheduling-policy priority`). */
  forwardPriority?: boolean;
}

export interface UpstreamRequest {
  /** The line's `url`, e.g. /v1/chat/completions */
  url: string;
  /** JSON text of the line's `body`. */
  body: string;
  customId: string;
  batchId: string;
  /** The body's model when the caller knows it (spares the pool parsing the body to route it). */
  model?: string;
  /**
   * A hash of the prompt prefix this request shares with others (`prefixKeyOf`): with several
   * upstreams, requests with the same key go to the same one, where its prefix cache has it.
   */
  prefixKey?: string;
  /** vLLM's request priority (lower runs earlier); sent only to upstreams configured to take it. */
  priority?: number;
}

/**
 * One OpenAI-compatible inference server (or a load balancer in front of several), reached over a
 * keep-alive undici Pool. `send` never throws: every ending is an `UpstreamOutcome`.
 */
export class UpstreamClient {
  readonly #pool: Pool;
  readonly #basePath: string;
  readonly #headers: Record<string, string>;
  readonly #getHeaders: Record<string, string>;
  readonly #opts: UpstreamClientOptions;
  readonly #aborters = new WeakMap<AbortSignal, Set<() => void>>();

  constructor(opts: UpstreamClientOptions) {
    this.#opts = opts;
    const url = new URL(opts.baseUrl);
    this.#basePath = url.pathname.replace(/\/+$/, '');
    this.#pool = new Pool(url.origin, {
      connections: opts.connections,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: opts.requestTimeoutMs,
      bodyTimeout: opts.requestTimeoutMs,
      connect: { timeout: Math.min(10_000, opts.requestTimeoutMs) },
    });
    this.#headers = { 'content-type': 'application/json', accept: 'application/json' };
    this.#getHeaders = { accept: 'application/json' };
    if (opts.apiKey) this.#headers.authorization = this.#getHeaders.authorization = `Bearer ${opts.apiKey}`;
  }

  /** Maps a line url (/v1/chat/completions) onto the base URL (http://h/v1 → /v1/chat/completions). */
  pathFor(lineUrl: string): string {
    if (this.#basePath.endsWith('/v1') && lineUrl.startsWith('/v1/')) return this.#basePath + lineUrl.slice(3);
    return this.#basePath + lineUrl;
  }

  /**
   * One attempt. Uses undici's dispatch handler API rather than `request()`: no body stream or
   * combined AbortSignal per request, which matters at thousands of requests per second.
   * The whole exchange (headers and a body that may trickle forever) has one deadline.
   */
  send(req: UpstreamRequest, signal: AbortSignal): Promise<UpstreamOutcome> {
    if (signal.aborted) return Promise.resolve({ kind: 'aborted' });
    const { requestTimeoutMs, maxResponseBytes } = this.#opts;
    return new Promise<UpstreamOutcome>((resolve) => {
      let controller: Dispatcher.DispatchController | null = null;
      let status = 0;
      let headers: Record<string, string | string[] | undefined> = {};
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      const finish = (o: UpstreamOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        aborters.delete(onAbort);
        if (o.kind !== 'response' && controller && !controller.aborted) controller.abort(new Error(o.kind));
        resolve(o);
      };
      const onAbort = (): void => finish({ kind: 'aborted' });
      const timer = setTimeout(
        () => finish({ kind: 'network_error', code: 'request_timeout', message: `The inference server did not answer within ${requestTimeoutMs} ms.` }),
        requestTimeoutMs,
      );
      const aborters = this.#abortersOf(signal);
      aborters.add(onAbort);
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart: (c) => {
          controller = c;
          if (settled) c.abort(new Error('settled'));
        },
        onResponseStart: (_c, statusCode, h) => {
          status = statusCode;
          headers = h;
        },
        onResponseData: (_c, chunk) => {
          size += chunk.length;
          if (size > maxResponseBytes) {
            finish({ kind: 'network_error', code: 'response_too_large', message: `The inference server's response exceeded ${maxResponseBytes} bytes.` });
            return;
          }
          chunks.push(chunk);
        },
        onResponseEnd: () => {
          const requestId = headers['x-request-id'];
          finish({
            kind: 'response',
            status,
            body: chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, size).toString('utf8'),
            requestId: typeof requestId === 'string' ? requestId : null,
            retryAfterMs: status >= 400 ? parseRetryAfter(headers) : null,
          });
        },
        onResponseError: (_c, err) => {
          if (signal.aborted) return finish({ kind: 'aborted' });
          if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
            return finish({ kind: 'network_error', code: 'request_timeout', message: `The inference server did not answer within ${requestTimeoutMs} ms.` });
          }
          const code = (err as { code?: unknown }).code;
          finish({ kind: 'network_error', code: 'connection_error', message: `Could not reach the inference server${typeof code === 'string' ? ` (${code})` : ''}.` });
        },
      };
      this.#pool.dispatch(
        {
          method: 'POST',
          path: this.pathFor(req.url),
          headers: { ...this.#headers, 'x-besh-custom-id': req.customId, 'x-besh-batch-id': req.batchId },
          body: this.#opts.forwardPriority && req.priority !== undefined ? withPriority(req.body, req.priority) : req.body,
        },
        handler,
      );
    });
  }

  /**
   * One 'abort' listener per signal (a batch's), fanning out to its requests in flight: adding and
   * removing an event listener per request costs more than the request's own bookkeeping.
   */
  #abortersOf(signal: AbortSignal): Set<() => void> {
    let set = this.#aborters.get(signal);
    if (!set) {
      const fresh = new Set<() => void>();
      set = fresh;
      this.#aborters.set(signal, fresh);
      signal.addEventListener('abort', () => {
        for (const abort of [...fresh]) abort();
      }, { once: true });
    }
    return set;
  }

  /** GET a path relative to the server root; the status and body text, or null when unreachable. */
  async get(path: string, timeoutMs = 2000, accept = 'application/json'): Promise<{ status: number; body: string } | null> {
    try {
      const headers = accept === 'application/json' ? this.#getHeaders : { ...this.#getHeaders, accept };
      const res = await this.#pool.request({ method: 'GET', path, headers, signal: AbortSignal.timeout(timeoutMs) });
      return { status: res.statusCode, body: await res.body.text() };
    } catch {
      return null;
    }
  }

  /** The base URL's path without a trailing `/v1` (where vLLM serves /health). */
  get rootPath(): string {
    return this.#basePath.replace(/\/v1$/, '');
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}
