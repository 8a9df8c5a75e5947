/**
 * What an inference server's Prometheus `GET /metrics` says of its load, read from the text
 * format without a general parser: only lines starting with one of the names below are looked
 * at (a vLLM page is mostly histogram buckets), and anything unexpected is skipped.
 */
export interface MetricsSample {
  /** Requests in the server's running batch (summed over engines / data-parallel ranks). */
  running: number;
  /** Requests queued before admission. */
  waiting: number;
  /** KV-cache blocks in use, 0..1 (the fullest engine); null when not exported. */
  kvUsage: number | null;
  /** Counters; null when not exported. Prefix-cache figures count tokens (vLLM). */
  prefixQueries: number | null;
  prefixHits: number | null;
  preemptions: number | null;
  generationTokens: number | null;
  /** A hit-rate gauge the server computes itself (SGLang); null when not exported. */
  prefixHitRate: number | null;
  /** Prompt tokens processed (a counter); absent when not exported. */
  promptTokens?: number;
  /** The inter-token-latency histogram's sum (seconds) and count (tokens); absent when not exported. */
  itlSeconds?: number;
  itlTokens?: number;
}

type Gauge = 'running' | 'waiting' | 'kv' | 'hitRate';
type Counter = 'queries' | 'hits' | 'preemptions' | 'generated' | 'prompt' | 'itlSum' | 'itlCount';
type Field = Gauge | Counter;

/**
 * vLLM V1 names (counters as prometheus_client prints them, with `_total`, and bare as some
 * exporters do), vLLM V0's `gpu_cache_usage_perc`, and SGLang's names.
 */
const NAMES: ReadonlyArray<readonly [string, Field]> = [
  ['vllm:num_requests_running', 'running'],
  ['vllm:num_requests_waiting', 'waiting'],
  ['vllm:kv_cache_usage_perc', 'kv'],
  ['vllm:gpu_cache_usage_perc', 'kv'],
  ['vllm:prefix_cache_queries_total', 'queries'],
  ['vllm:prefix_cache_queries', 'queries'],
  ['vllm:prefix_cache_hits_total', 'hits'],
  ['vllm:prefix_cache_hits', 'hits'],
  ['vllm:num_preemptions_total', 'preemptions'],
  ['vllm:num_preemptions', 'preemptions'],
  ['vllm:generation_tokens_total', 'generated'],
  ['vllm:generation_tokens', 'generated'],
  ['vllm:prompt_tokens_total', 'prompt'],
  ['vllm:prompt_tokens', 'prompt'],
  // vLLM ≥ 0.11; the older name of the same histogram after it.
  ['vllm:inter_token_latency_seconds_sum', 'itlSum'],
  ['vllm:inter_token_latency_seconds_count', 'itlCount'],
  ['vllm:time_per_output_token_seconds_sum', 'itlSum'],
  ['vllm:time_per_output_token_seconds_count', 'itlCount'],
  ['sglang:num_running_reqs', 'running'],
  ['sglang:num_queue_reqs', 'waiting'],
  ['sglang:token_usage', 'kv'],
  ['sglang:cache_hit_rate', 'hitRate'],
  ['sglang:generation_tokens_total', 'generated'],
];

/**
 * Candidate names by the character after the family prefix (`vllm:` / `sglang:`): most lines of a
 * page are histogram buckets of other names, turned away by one comparison.
 */
const byFamily = (family: string): Map<number, ReadonlyArray<readonly [string, Field]>> => {
  const m = new Map<number, Array<readonly [string, Field]>>();
  for (const entry of NAMES) {
    if (!entry[0].startsWith(family)) continue;
    const c = entry[0].charCodeAt(family.length);
    m.set(c, [...(m.get(c) ?? []), entry]);
  }
  return m;
};
const VLLM = byFamily('vllm:');
const SGLANG = byFamily('sglang:');
const V = 118; // 'v'
const S = 115; // 's'

/** The load figures of a Prometheus text page; null unless it has both a running and a waiting gauge. */
export function parseServerMetrics(text: string): MetricsSample | null {
  const sum: Record<Field, number | null> = { running: null, waiting: null, kv: null, hitRate: null, queries: null, hits: null, preemptions: null, generated: null, prompt: null, itlSum: null, itlCount: null };
  // A counter family is read under one spelling only: `_total` and bare ones are never added up.
  const spelling: Partial<Record<Field, string>> = {};
  const len = text.length;
  for (let pos = 0; pos < len; ) {
    let eol = text.indexOf('\n', pos);
    if (eol < 0) eol = len;
    const c = text.charCodeAt(pos);
    const candidates = c === V ? VLLM.get(text.charCodeAt(pos + 5)) : c === S ? SGLANG.get(text.charCodeAt(pos + 7)) : undefined;
    if (candidates !== undefined) {
      for (const [name, field] of candidates) {
        if (!text.startsWith(name, pos)) continue;
        const after = text.charCodeAt(pos + name.length);
        if (after !== 123 && after !== 32) continue; // `{` or a space: not a longer name's prefix
        const value = sampleValue(text, pos + name.length, eol);
        if (value === null) break;
        if (field === 'kv' || field === 'hitRate') {
          sum[field] = Math.max(sum[field] ?? 0, value);
        } else if ((spelling[field] ??= name) === name) {
          sum[field] = (sum[field] ?? 0) + value;
        }
        break;
      }
    }
    pos = eol + 1;
  }
  if (sum.running === null || sum.waiting === null) return null;
  return {
    running: sum.running,
    waiting: sum.waiting,
    kvUsage: sum.kv === null ? null : clamp01(sum.kv),
    prefixQueries: sum.queries,
    prefixHits: sum.hits,
    preemptions: sum.preemptions,
    generationTokens: sum.generated,
    prefixHitRate: sum.hitRate === null ? null : clamp01(sum.hitRate),
    ...(sum.prompt !== null ? { promptTokens: sum.prompt } : {}),
    ...(sum.itlSum !== null && sum.itlCount !== null ? { itlSeconds: sum.itlSum, itlTokens: sum.itlCount } : {}),
  };
}

/** The value after `name` at `i`: optional `{labels}` (quoted, with escapes), then a finite number ≥ 0. */
function sampleValue(text: string, i: number, eol: number): number | null {
  if (text.charCodeAt(i) === 123) {
    let inQuote = false;
    for (i++; i < eol; i++) {
      const c = text.charCodeAt(i);
      if (inQuote) {
        if (c === 92) i++;
        else if (c === 34) inQuote = false;
      } else if (c === 34) {
        inQuote = true;
      } else if (c === 125) {
        break;
      }
    }
    if (i >= eol) return null;
    i++;
  }
  while (i < eol && text.charCodeAt(i) === 32) i++;
  let end = i;
  while (end < eol && text.charCodeAt(end) !== 32 && text.charCodeAt(end) !== 13) end++;
  if (end === i) return null;
  const v = Number(text.slice(i, end));
  return Number.isFinite(v) && v >= 0 ? v : null;
}

const clamp01 = (v: number): number => Math.min(1, Math.max(0, v));
