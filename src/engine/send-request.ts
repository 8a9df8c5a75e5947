import { newBatchRequestId, nowSeconds, type Usage } from '../domain/index.js';

const MAX_PRIORITY = 2_147_483_647;
import { errorLine, factsOfBody, httpErrorLine, successLine } from '../jsonl/index.js';
import { classifyStatus, isRetryable } from '../upstream/outcome.js';
import type { Upstream } from '../upstream/upstream.js';
import { sleep } from './abortable-sleep.js';
import type { EngineEvents } from './engine-events.js';
import { retryDelayMs,type RetryPolicy } from './retry-policy.js';

export interface LineRequest {
  customId: string;
  url: string;
  /** JSON text of the line's body. */
  body: string;
  /** The hash of its shared prompt prefix (prefix-affinity routing), when computed. */
  prefixKey?: string | undefined;
}

/** How one request ended: a line for the output or the error file, or nothing (abandoned). */
export type RequestResult =
  | { kind: 'output'; line: string; usage: Usage | null; status: number; attempts: number }
  | { kind: 'error'; line: string; status: number | null; attempts: number }
  | { kind: 'abandoned' };

export interface SendContext {
  batchId: string;
  project: string;
  /** The one model every line names (known after validation), so the pool need not parse bodies to route. */
  model: string | null;
  /** The batch's expires_at (unix seconds) when upstreams take a priority from it; else null. */
  priorityDeadline: number | null;
  upstream: Upstream;
  retry: RetryPolicy;
  events: EngineEvents;
  /** Aborts requests already sent. */
  abortRequests: AbortSignal;
  /** Aborts retry backoffs: no new attempt starts. */
  stopTaking: AbortSignal;
}

/**
 * Sends one request with retries (connection errors, timeouts, 408/409/429/5xx; backoff with
 * jitter honouring Retry-After) and turns the ending into an OpenAI result line. A request that is
 * aborted, or whose backoff is cut short by a stop, is `abandoned`: the caller decides whether it
 * is re-sent after a restart (shutdown) or reported as cancelled/expired.
 */
export async function sendRequest(ctx: SendContext, req: LineRequest): Promise<RequestResult> {
  for (let attempt = 1; ; attempt++) {
    const o = await ctx.upstream.send(
      {
        url: req.url,
        body: req.body,
        customId: req.customId,
        batchId: ctx.batchId,
        ...(ctx.model === null ? {} : { model: ctx.model }),
        ...(req.prefixKey === undefined ? {} : { prefixKey: req.prefixKey }),
        // vLLM runs lower priorities first: the seconds left before the deadline.
        ...(ctx.priorityDeadline === null ? {} : { priority: Math.max(0, Math.min(MAX_PRIORITY, ctx.priorityDeadline - nowSeconds())) }),
      },
      ctx.abortRequests,
    );
    if (o.kind === 'aborted') return { kind: 'abandoned' };
    if (o.kind === 'response' && classifyStatus(o.status) === 'success') {
      const facts = factsOfBody(o.body);
      const id = newBatchRequestId();
      if (facts === undefined) {
        const line = errorLine(id, req.customId, 'invalid_upstream_response', 'The inference server answered 2xx with a body that is not JSON.');
        return { kind: 'error', line, status: o.status, attempts: attempt };
      }
      // Always a string, as in OpenAI's files: the upstream's x-request-id, else its body's id, else ours.
      const requestId = o.requestId ?? facts.id ?? id;
      return { kind: 'output', line: successLine(id, req.customId, o.status, requestId, o.body), usage: facts.usage, status: o.status, attempts: attempt };
    }
    if (isRetryable(o) && attempt < ctx.retry.maxAttempts) {
      const delayMs = retryDelayMs(ctx.retry, attempt, o.kind === 'response' ? o.retryAfterMs : null);
      if (ctx.events.listenerCount('request:retry') > 0) {
        ctx.events.safeEmit('request:retry', { batchId: ctx.batchId, project: ctx.project, status: o.kind === 'response' ? o.status : null, attempt, delayMs });
      }
      try {
        await sleep(delayMs, ctx.stopTaking);
      } catch {
        return { kind: 'abandoned' };
      }
      continue;
    }
    if (o.kind === 'response') {
      const id = newBatchRequestId();
      return { kind: 'error', line: httpErrorLine(id, req.customId, o.status, o.requestId ?? id, o.body), status: o.status, attempts: attempt };
    }
    return { kind: 'error', line: errorLine(newBatchRequestId(), req.customId, o.code, o.message), status: null, attempts: attempt };
  }
}

