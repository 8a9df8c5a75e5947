import { ITL_BUCKETS_S, type ItlSnapshot } from './itl-histogram.js';

/** The figures `GET /metrics` exports. */
export interface MetricsView {
  modelName: string;
  running: number;
  waiting: number;
  kvCacheUsage: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
  promptTokens: number;
  generationTokens: number;
  /** The step engine's inter-token latencies; absent without one (the plain mock). */
  interTokenLatency?: ItlSnapshot;
}

type Kind = 'gauge' | 'counter';

/** Name (as scraped: prometheus_client appends `_total` to counters), kind, help, figure. */
const METRICS: ReadonlyArray<[string, Kind, string, (v: MetricsView) => number]> = [
  ['vllm:num_requests_running', 'gauge', 'Number of requests in model execution batches.', (v) => v.running],
  ['vllm:num_requests_waiting', 'gauge', 'Number of requests waiting to be processed.', (v) => v.waiting],
  ['vllm:kv_cache_usage_perc', 'gauge', 'KV-cache usage. 1 means 100 percent usage.', (v) => v.kvCacheUsage],
  ['vllm:prefix_cache_queries_total', 'counter', 'Prefix cache queries, in terms of number of queried tokens.', (v) => v.prefixCacheQueries],
  ['vllm:prefix_cache_hits_total', 'counter', 'Prefix cache hits, in terms of number of cached tokens.', (v) => v.prefixCacheHits],
  ['vllm:prompt_tokens_total', 'counter', 'Number of prefill tokens processed.', (v) => v.promptTokens],
  ['vllm:generation_tokens_total', 'counter', 'Number of generation tokens processed.', (v) => v.generationTokens],
];

const escapeLabel = (s: string): string => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** As prometheus_client prints values: floats, integers with a trailing `.0`. */
const value = (n: number): string => (Number.isInteger(n) ? `${n}.0` : String(n));

/** vLLM V1's metric names and labels (`model_name`, `engine`) in the Prometheus text format. */
export function renderMetrics(v: MetricsView): string {
  const labels = `{model_name="${escapeLabel(v.modelName)}",engine="0"}`;
  let out = '';
  for (const [name, kind, help, figure] of METRICS) {
    out += `# HELP ${name} ${help}\n# TYPE ${name} ${kind}\n${name}${labels} ${value(figure(v))}\n`;
  }
  if (v.interTokenLatency) out += histogram('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', labels, v.interTokenLatency);
  return out;
}

function histogram(name: string, help: string, labels: string, h: ItlSnapshot): string {
  const inner = labels.slice(1, -1);
  let out = `# HELP ${name} ${help}\n# TYPE ${name} histogram\n`;
  ITL_BUCKETS_S.forEach((le, i) => {
    out += `${name}_bucket{${inner},le="${value(le)}"} ${value(h.buckets[i]!)}\n`;
  });
  out += `${name}_bucket{${inner},le="+Inf"} ${value(h.count)}\n${name}_count${labels} ${value(h.count)}\n${name}_sum${labels} ${value(h.sumSeconds)}\n`;
  return out;
}
