import { errors as undiciErrors, Pool } from 'undici';

import { parseRetryAfter,type UpstreamOutcome } from './outcome.js';

export interface UpstreamClientOptions {
  /** e.g. http://localhost:8000/v1 */
  baseUrl: string;
  apiKey: string | null;
  /** Keep-alive connections to open at most (one request per connection). */
  connections: number;
  requestTimeoutMs: number;
  maxResponseBytes: number;
}

export interface UpstreamRequest {
  /** The line's `url`, e.g. /v1/chat/completions */
  url: string;
  /** JSON text of the line's `body`. */
  body: string;
  customId: string;
  batchId: string;
}

/**
 * One OpenAI-compatible inference server (or a load balancer in front of several), reached over a
 * keep-alive undici Pool. `send` never throws: every ending is an `UpstreamOutcome`.
 */
export class UpstreamClient {
  readonly #pool: Pool;
  readonly #basePath: string;
  readonly #headers: Record<string, string>;
  readonly #opts: UpstreamClientOptions;

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
    if (opts.apiKey) this.#headers.authorization = `Bearer ${opts.apiKey}`;
  }

  /** Maps a line url (/v1/chat/completions) onto the base URL (http://h/v1 → /v1/chat/completions). */
  pathFor(lineUrl: string): string {
    if (this.#basePath.endsWith('/v1') && lineUrl.startsWith('/v1/')) return this.#basePath + lineUrl.slice(3);
    return this.#basePath + lineUrl;
  }

  async send(req: UpstreamRequest, signal: AbortSignal): Promise<UpstreamOutcome> {
    if (signal.aborted) return { kind: 'aborted' };
    // One deadline for the whole exchange: headers and a body that may trickle forever.
    const timeout = AbortSignal.timeout(this.#opts.requestTimeoutMs);
    const combined = AbortSignal.any([signal, timeout]);
    try {
      const res = await this.#pool.request({
        method: 'POST',
        path: this.pathFor(req.url),
        headers: { ...this.#headers, 'x-besh-custom-id': req.customId, 'x-besh-batch-id': req.batchId },
        body: req.body,
        signal: combined,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > this.#opts.maxResponseBytes) {
          res.body.destroy();
          return {
            kind: 'network_error',
            code: 'response_too_large',
            message: `The inference server's response exceeded ${this.#opts.maxResponseBytes} bytes.`,
          };
        }
        chunks.push(chunk);
      }
      const requestId = res.headers['x-request-id'];
      return {
        kind: 'response',
        status: res.statusCode,
        body: chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, size).toString('utf8'),
        requestId: typeof requestId === 'string' ? requestId : null,
        retryAfterMs: res.statusCode >= 400 ? parseRetryAfter(res.headers) : null,
      };
    } catch (err) {
      if (signal.aborted) return { kind: 'aborted' };
      if (timeout.aborted || err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
        return { kind: 'network_error', code: 'request_timeout', message: `The inference server did not answer within ${this.#opts.requestTimeoutMs} ms.` };
      }
      const code = (err as { code?: unknown }).code;
      return {
        kind: 'network_error',
        code: 'connection_error',
        message: `Could not reach the inference server${typeof code === 'string' ? ` (${code})` : ''}.`,
      };
    }
  }

  /** GET a path relative to the server root (e.g. /health) — used for reachability checks. */
  async probe(path: string, timeoutMs = 2000): Promise<boolean> {
    try {
      const res = await this.#pool.request({ method: 'GET', path, signal: AbortSignal.timeout(timeoutMs) });
      await res.body.dump();
      return res.statusCode < 500;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}
