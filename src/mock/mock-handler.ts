import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';

import type { CapacityGate } from './capacity-gate.js';
import { chatCompletion, textCompletion } from './completions.js';
import { embeddings } from './embeddings.js';
import type { FaultInjector } from './faults.js';
import type { GenContext, Generated } from './generated.js';
import { hashString } from './hash.js';
import type { MockOptions } from './mock-options.js';
import type { MockStatsRecorder } from './mock-stats.js';
import type { ModelRegistry } from './model-registry.js';
import { errorEnvelope, MockRequestError, writeJson, writeMetrics } from './respond.js';
import { response } from './responses.js';
import type { StepEngine } from './step-engine.js';
import { type Body, isObject } from './text.js';
import { renderMetrics } from './vllm-metrics.js';
import { requestPriority, serveOnEngine } from './vllm-serve.js';

/** The parts of a running mock the handler works with. */
export interface MockState {
  readonly opts: MockOptions;
  readonly stats: MockStatsRecorder;
  readonly gate: CapacityGate;
  /** The vLLM-shaped engine (`--max-num-seqs`), which then replaces the gate and latency. */
  readonly engine: StepEngine | null;
  readonly faults: FaultInjector;
  readonly models: ModelRegistry;
  reset(): void;
}

type Generate = (body: Body, model: string, g: GenContext) => Generated;

const QUEUED = 0;
const SLEEPING = 1;
const DONE = 2;

/**
 * The request handler. Inference requests go: read body → count reception → fault injection
 * (drop / 500 / 429, before any slot) → fail marker → hang marker → validate → wait for a slot
 * (FIFO) → sleep latency + per-token → answer; with the engine, validate → engine → answer when
 * the engine finished it. A client that leaves while queued or running gives its place back.
 */
export function createMockHandler(state: MockState): (req: IncomingMessage, res: ServerResponse) => void {
  const { opts, stats, gate, engine, faults, models } = state;
  const levels = engine ?? gate;
  const inference = new Map<string, Generate>([
    ['/v1/chat/completions', chatCompletion],
    ['/v1/completions', textCompletion],
    ['/v1/embeddings', (body, model, g) => embeddings(body, model, g, opts.embeddingDims, opts.seed)],
    ['/v1/responses', response],
  ]);

  const metrics = (): string => {
    const e = engine?.levels();
    return renderMetrics({
      modelName: models.metricsName,
      running: e?.running ?? gate.inFlight,
      waiting: e?.waiting ?? gate.queued,
      kvCacheUsage: e?.kvCacheUsage ?? 0,
      prefixCacheQueries: e?.prefixCacheQueries ?? 0,
      prefixCacheHits: e?.prefixCacheHits ?? 0,
      promptTokens: stats.promptTokens,
      generationTokens: stats.generationTokens,
      ...(e ? { interTokenLatency: e.interTokenLatency } : {}),
    });
  };

  const idPrefix = `mock${randomBytes(4).toString('hex')}`;
  let seq = 0;
  const nextId = (): string => idPrefix + (++seq).toString(36);

  /** A counted response (the /mock/* routes are not counted). */
  const reply = (res: ServerResponse, status: number, body: string, id: string, retryAfter?: number): void => {
    stats.countStatus(status);
    writeJson(res, status, body, id, retryAfter);
  };
  const replyError = (res: ServerResponse, id: string, err: MockRequestError): void =>
    reply(res, err.status, errorEnvelope(err.message, err.type, err.code, err.param), id);

  /** Answers 200 with `body` and frees the slot the request holds. */
  const finish = (res: ServerResponse, body: string, id: string, g: Generated): void => {
    stats.countTokens(g.promptTokens, g.completionTokens);
    reply(res, 200, body, id);
    gate.release();
  };

  /** The slow path: queued for a slot and/or sleeping, watching for the client leaving. */
  const wait = (res: ServerResponse, body: string, id: string, g: Generated, delayMs: number, holdsSlot: boolean): void => {
    let phase = holdsSlot ? SLEEPING : QUEUED;
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      phase = DONE;
      res.off('close', onClose);
      finish(res, body, id, g);
    };
    const start = (): void => {
      if (delayMs > 0) {
        phase = SLEEPING;
        timer = setTimeout(done, delayMs);
      } else {
        done();
      }
    };
    const onClose = (): void => {
      if (phase === QUEUED) gate.cancel(start);
      else if (phase === SLEEPING) {
        clearTimeout(timer);
        gate.release();
      }
      phase = DONE;
    };
    res.once('close', onClose);
    if (holdsSlot) start();
    else gate.enqueue(start);
  };

  const infer = (req: IncomingMessage, res: ServerResponse, generate: Generate, raw: string, arrived: number): void => {
    const header = req.headers['x-besh-custom-id'];
    const key = typeof header === 'string' ? header : createHash('sha1').update(raw).digest('hex');
    stats.countReceived(key);

    const fault = faults.decide(key);
    if (fault === 'drop') {
      stats.drops++;
      req.socket.destroy();
      return;
    }
    const id = nextId();
    if (fault === 500) {
      stats.faults500++;
      reply(res, 500, errorEnvelope('Mock injected internal server error.', 'server_error'), id);
      return;
    }
    if (fault === 429) {
      stats.faults429++;
      const body = errorEnvelope('Mock injected rate limit: too many requests.', 'rate_limit_error', 'rate_limit_exceeded');
      reply(res, 429, body, id, opts.retryAfterSeconds);
      return;
    }
    if (raw.includes(opts.failMarker)) {
      replyError(res, id, new MockRequestError(400, `Mock failure requested by the ${opts.failMarker} marker.`, 'mock_fail'));
      return;
    }
    if (raw.includes(opts.hangMarker)) return; // never answered; close() destroys the socket

    let generated: Generated;
    let model: string;
    let priority = 0;
    try {
      const parsed = parseBody(raw, models);
      model = parsed.model;
      generated = generate(parsed.body, model, { id, created: Math.floor(Date.now() / 1000), hash: hashString(raw, opts.seed) });
      if (engine !== null) priority = requestPriority(parsed.body, opts.schedulingPolicy);
    } catch (err) {
      if (!(err instanceof MockRequestError)) throw err;
      replyError(res, id, err);
      return;
    }
    if (engine !== null) {
      if (!res.destroyed) serveOnEngine(engine, res, id, generated, model, priority, stats, reply);
      return;
    }
    const body = JSON.stringify(generated.payload);
    const delayMs = opts.latencyMs + opts.perTokenMs * generated.completionTokens;
    if (res.destroyed) return;
    const holdsSlot = gate.tryAcquire();
    // The latency is the service time from arrival, as a GPU server's would be: the mock's own
    // parsing of a burst of requests is part of it, not added to it. A queued request's latency
    // starts when it gets its slot.
    const sleepMs = holdsSlot ? delayMs - (performance.now() - arrived) : delayMs;
    if (holdsSlot && sleepMs <= 0) finish(res, body, id, generated);
    else wait(res, body, id, generated, Math.max(0, sleepMs), holdsSlot);
  };

  const readAndInfer = (req: IncomingMessage, res: ServerResponse, generate: Generate): void => {
    const arrived = performance.now();
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      raw += chunk;
    });
    req.on('end', () => {
      try {
        infer(req, res, generate, raw, arrived);
      } catch (err) {
        if (res.headersSent) res.destroy();
        else reply(res, 500, errorEnvelope(`Mock internal error: ${String(err)}`, 'server_error'), nextId());
      }
    });
  };

  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const method = req.method;

    if (path.startsWith('/mock/')) {
      if (path === '/mock/stats' && method === 'GET') {
        writeJson(res, 200, JSON.stringify(stats.snapshot(levels)), nextId());
      } else if (path === '/mock/reset' && method === 'POST') {
        state.reset();
        writeJson(res, 200, JSON.stringify(stats.snapshot(levels)), nextId());
      } else if (path === '/mock/models' && method === 'GET') {
        writeJson(res, 200, models.mockList(), nextId());
      } else {
        writeJson(res, 404, errorEnvelope(`Not found: ${method} ${path}`), nextId());
      }
      return;
    }

    // Health checks, model listings (which BESH's upstream pool polls) and metrics scrapes are not
    // counted, like /mock/*: the stats describe the traffic a batch causes.
    if (path === '/health' && (method === 'GET' || method === 'HEAD')) {
      res.writeHead(200, { 'content-length': 0, 'x-request-id': nextId() });
      res.end();
      return;
    }
    if (path === '/v1/models' && method === 'GET') {
      const list = models.v1List();
      if (list !== null) writeJson(res, 200, list, nextId());
      else writeJson(res, 404, errorEnvelope('This mock serves any model name, so it lists none here (start it with --models to list some); the names asked for so far are at GET /mock/models.'), nextId());
      return;
    }
    if (path === '/metrics' && method === 'GET') {
      writeMetrics(res, metrics());
      return;
    }
    stats.totalRequests++;
    const generate = inference.get(path);
    if (generate !== undefined) {
      if (method === 'POST') readAndInfer(req, res, generate);
      else reply(res, 405, errorEnvelope('Method Not Allowed'), nextId());
      return;
    }
    reply(res, 404, errorEnvelope(`Not found: ${method} ${path}`), nextId());
  };
}

/** The JSON body as an object with a served `model`; throws the 400/404 vLLM would send. */
function parseBody(raw: string, models: ModelRegistry): { body: Body; model: string } {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new MockRequestError(400, 'We could not parse the JSON body of your request.');
  }
  if (!isObject(body)) throw new MockRequestError(400, 'The request body must be a JSON object.');
  const model = body.model;
  if (typeof model !== 'string' || model.length === 0) {
    throw new MockRequestError(400, "you must provide a model parameter ('model' is required)", null, 'model');
  }
  if (!models.serves(model)) throw new MockRequestError(404, `The model \`${model}\` does not exist.`, 'model_not_found', 'model');
  if (body.stream === true) throw new MockRequestError(400, 'Streaming is not supported by the mock server.', null, 'stream');
  return { body, model };
}
