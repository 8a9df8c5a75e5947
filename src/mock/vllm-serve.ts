import type { ServerResponse } from 'node:http';

import { type Generated, reportCachedTokens } from './generated.js';
import { hashString } from './hash.js';
import type { SchedulingPolicy } from './mock-options.js';
import type { MockStatsRecorder } from './mock-stats.js';
import { MockRequestError } from './respond.js';
import type { StepEngine } from './step-engine.js';
import type { Body } from './text.js';

/**
 * The request's `priority` (vLLM's extra field; lower runs earlier, default 0). Under `fcfs` vLLM
 * refuses a non-zero one with this message, as a 400 `BadRequestError` whose code is the status.
 */
export function requestPriority(body: Body, policy: SchedulingPolicy): number {
  const p = body.priority ?? 0;
  if (typeof p !== 'number' || !Number.isSafeInteger(p)) throw new MockRequestError(400, "'priority' must be an integer", null, 'priority');
  if (p !== 0 && policy !== 'priority') {
    throw new MockRequestError(400, `Got priority ${p} but Priority scheduling is not enabled.`, 400, null, 'BadRequestError');
  }
  return p;
}

type Reply = (res: ServerResponse, status: number, body: string, id: string) => void;

/** Runs a validated request on the engine and answers once it finished; a client that leaves aborts it. */
export function serveOnEngine(engine: StepEngine, res: ServerResponse, id: string, g: Generated, model: string, priority: number, stats: MockStatsRecorder, reply: Reply): void {
  const onClose = (): void => engine.cancel(job);
  const job = engine.submit({
    work: g.work,
    priority,
    cacheSalt: g.cacheField === null ? null : hashString(model, 0),
    onDone: (r) => {
      res.off('close', onClose);
      reportCachedTokens(g, r.cachedTokens, r.cacheWriteTokens);
      stats.countTokens(g.promptTokens, g.completionTokens);
      reply(res, 200, JSON.stringify(g.payload), id);
    },
  });
  res.once('close', onClose);
}
