import { Command } from 'commander';

import { type MockOptions, parseMockOptions, startMockServer } from '../mock/index.js';

/** commander's attribute name → the flag name parseMockOptions reads. */
const FLAGS: Record<string, string> = {
  host: 'host',
  port: 'port',
  latencyMs: 'latency-ms',
  perTokenMs: 'per-token-ms',
  capacity: 'capacity',
  models: 'models',
  embeddingDims: 'embedding-dims',
  fail500Rate: 'fail-500-rate',
  fail429Rate: 'fail-429-rate',
  retryAfter: 'retry-after',
  dropRate: 'drop-rate',
  maxFaultsPerRequest: 'max-faults-per-request',
  failMarker: 'fail-marker',
  hangMarker: 'hang-marker',
  seed: 'seed',
  maxNumSeqs: 'max-num-seqs',
  maxNumBatchedTokens: 'max-num-batched-tokens',
  prefillMsPerToken: 'prefill-ms-per-token',
  decodeMsPerToken: 'decode-ms-per-token',
  decodeGrowthPerSeq: 'decode-growth-per-seq',
  prefixCacheTokens: 'prefix-cache-tokens',
  kvCacheTokens: 'kv-cache-tokens',
  schedulingPolicy: 'scheduling-policy',
};

function describe(o: MockOptions): string {
  const models = o.models.length > 0 ? o.models.join(', ') : 'any';
  if (o.maxNumSeqs === 0) return `models: ${models}, latency ${o.latencyMs} ms, capacity ${o.capacity || 'unlimited'}`;
  const cache = o.prefixCacheTokens > 0 ? `prefix cache ${o.prefixCacheTokens} tokens` : 'no prefix cache';
  return `models: ${models}, vLLM-shaped: max-num-seqs ${o.maxNumSeqs}, decode ${o.decodeMsPerToken} ms/token, prefill ${o.prefillMsPerToken} ms/token, ${cache}, ${o.schedulingPolicy}`;
}

export function mockCommand(): Command {
  return new Command('mock')
    .description('Start a simulated OpenAI-compatible inference server (vLLM-shaped) for tests, demos and benchmarks; see docs/simulator.md')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', '8000')
    .option('--latency-ms <ms>', 'fixed latency per request', '0')
    .option('--per-token-ms <ms>', 'extra latency per generated token', '0')
    .option('--capacity <n>', 'requests processed at once, the rest queue (0 = unlimited)', '0')
    .option('--models <list>', 'comma-separated model names served (default: any name)')
    .option('--embedding-dims <n>', 'embedding vector size', '16')
    .option('--fail-500-rate <p>', 'probability of an injected HTTP 500', '0')
    .option('--fail-429-rate <p>', 'probability of an injected HTTP 429', '0')
    .option('--retry-after <s>', 'Retry-After seconds sent with 429', '1')
    .option('--drop-rate <p>', 'probability of dropping the connection without an answer', '0')
    .option('--max-faults-per-request <n>', 'injected faults per distinct request at most')
    .option('--fail-marker <text>', 'requests containing it get HTTP 400', 'MOCK_FAIL_400')
    .option('--hang-marker <text>', 'requests containing it are never answered', 'MOCK_HANG')
    .option('--seed <n>', 'seed of the fault generator', '1')
    .option('--max-num-seqs <n>', 'vLLM-shaped engine: sequences running at once, the rest wait (0 = off)', '0')
    .option('--max-num-batched-tokens <n>', 'engine: tokens per step (decodes + prefill chunks)')
    .option('--prefill-ms-per-token <ms>', 'engine: step time per prompt token not in the prefix cache')
    .option('--decode-ms-per-token <ms>', 'engine: decode step time with one sequence running')
    .option('--decode-growth-per-seq <f>', 'engine: fraction of the decode step time each further running sequence adds')
    .option('--prefix-cache-tokens <n>', 'engine: prefix cache capacity in tokens, 16-token blocks (0 = off)')
    .option('--kv-cache-tokens <n>', 'engine: KV cache capacity in tokens')
    .option('--scheduling-policy <p>', 'engine: fcfs (a request with a priority gets 400) or priority')
    .action(async (flags: Record<string, string | undefined>) => {
      const raw: Record<string, string | undefined> = {};
      for (const [attr, flag] of Object.entries(FLAGS)) raw[flag] = flags[attr];
      let opts;
      try {
        opts = parseMockOptions(raw);
      } catch (err) {
        process.stderr.write(`besh mock: ${(err as Error).message}\n`);
        process.exit(2);
      }
      const server = await startMockServer(opts);
      process.stdout.write(`besh mock listening on ${server.url} (${describe(opts)})\n`);
      const stop = (): void => void server.close().then(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
}
