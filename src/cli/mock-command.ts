import { Command } from 'commander';

import { parseMockOptions, startMockServer } from '../mock/index.js';

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
};

export function mockCommand(): Command {
  return new Command('mock')
    .description('Start a simulated OpenAI-compatible inference server (vLLM-shaped) for tests, demos and benchmarks')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', '8000')
    .option('--latency-ms <ms>', 'fixed latency per request', '0')
    .option('--per-token-ms <ms>', 'extra latency per generated token', '0')
    .option('--capacity <n>', 'requests processed at once, the rest queue (0 = unlimited)', '0')
    .option('--models <list>', 'comma-separated model names served', 'mock-model')
    .option('--embedding-dims <n>', 'embedding vector size', '16')
    .option('--fail-500-rate <p>', 'probability of an injected HTTP 500', '0')
    .option('--fail-429-rate <p>', 'probability of an injected HTTP 429', '0')
    .option('--retry-after <s>', 'Retry-After seconds sent with 429', '1')
    .option('--drop-rate <p>', 'probability of dropping the connection without an answer', '0')
    .option('--max-faults-per-request <n>', 'injected faults per distinct request at most')
    .option('--fail-marker <text>', 'requests containing it get HTTP 400', 'MOCK_FAIL_400')
    .option('--hang-marker <text>', 'requests containing it are never answered', 'MOCK_HANG')
    .option('--seed <n>', 'seed of the fault generator', '1')
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
      process.stdout.write(`besh mock listening on ${server.url} (models: ${opts.models.join(', ')}, latency ${opts.latencyMs} ms, capacity ${opts.capacity || 'unlimited'})\n`);
      const stop = (): void => void server.close().then(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
}
