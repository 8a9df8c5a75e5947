import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeVllmOptions {
  /** Requests served at once (vLLM's --max-num-seqs); the rest wait FIFO. */
  maxNumSeqs: number;
  /** How long a running request takes. */
  serviceMs: number;
  /** false: GET /metrics answers 404, as a server without metrics. */
  metrics?: boolean;
  /** Extra waiting requests reported (other clients' queue), on top of the real ones. */
  foreignWaiting?: number;
  /** Listed at GET /v1/models; absent: 404 there. */
  models?: string[];
  /** What GET /metrics answers instead of the figures (e.g. an HTML page). */
  metricsBody?: string;
}

export interface FakeVllm {
  url: string;
  /** Bodies of the inference requests received, in order. */
  bodies: string[];
  /** The most requests this server had (running + waiting) at once. */
  peakOutstanding: number;
  running: number;
  waiting: number;
  opts: FakeVllmOptions;
  close(): Promise<void>;
}

/**
 * A small vLLM stand-in for the pool's integration tests: chat completions with a batch of
 * `maxNumSeqs` slots and a FIFO queue, GET /health, and GET /metrics in vLLM's Prometheus text
 * format (HELP/TYPE lines, `model_name` labels, `_total` counters) with its real queue figures.
 */
export async function startFakeVllm(opts: FakeVllmOptions): Promise<FakeVllm> {
  const queue: Array<() => void> = [];
  let generated = 0;
  const state: FakeVllm = { url: '', bodies: [], peakOutstanding: 0, running: 0, waiting: 0, opts, close: () => Promise.resolve() };
  const admit = (): void => {
    while (state.running < state.opts.maxNumSeqs && queue.length > 0) {
      state.running++;
      state.waiting--;
      queue.shift()!();
    }
  };
  const metrics = (): string => {
    const l = '{model_name="fake",engine="0"}';
    return [
      '# HELP vllm:num_requests_running Number of requests in model execution batches.',
      '# TYPE vllm:num_requests_running gauge',
      `vllm:num_requests_running${l} ${state.running}.0`,
      '# HELP vllm:num_requests_waiting Number of requests waiting to be processed.',
      '# TYPE vllm:num_requests_waiting gauge',
      `vllm:num_requests_waiting${l} ${state.waiting + (state.opts.foreignWaiting ?? 0)}.0`,
      '# TYPE vllm:kv_cache_usage_perc gauge',
      `vllm:kv_cache_usage_perc${l} ${(state.running / Math.max(1, state.opts.maxNumSeqs)) * 0.5}`,
      '# TYPE vllm:generation_tokens_total counter',
      `vllm:generation_tokens_total${l} ${generated}.0`,
      `vllm:generation_tokens_created${l} 1.7e9`,
      '',
    ].join('\n');
  };
  const srv = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET' && req.url === '/health') return void res.writeHead(200).end();
    if (req.method === 'GET' && req.url === '/metrics') {
      if (state.opts.metrics === false) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
      if (state.opts.metricsBody !== undefined) return void res.writeHead(200, { 'content-type': 'text/html' }).end(state.opts.metricsBody);
      return void res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics());
    }
    if (req.method === 'GET' && req.url === '/v1/models') {
      if (!state.opts.models) return void res.writeHead(404).end();
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: state.opts.models.map((id) => ({ id, object: 'model' })) }));
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.bodies.push(Buffer.concat(chunks).toString('utf8'));
      state.waiting++;
      state.peakOutstanding = Math.max(state.peakOutstanding, state.running + state.waiting);
      queue.push(() => {
        setTimeout(() => {
          state.running--;
          // One token per engine step; a request is 10 steps.
          generated += 10;
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"choices":[{"message":{"content":"ok"}}]}');
          admit();
        }, state.opts.serviceMs);
      });
      admit();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((r) => {
      srv.closeAllConnections();
      srv.close(() => r());
    });
  return state;
}
