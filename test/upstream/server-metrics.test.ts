import { describe, expect, it } from 'vitest';

import { parseServerMetrics } from '../../src/upstream/server-metrics.js';

/** Shaped as vLLM V1's /metrics (prometheus_client text format 0.0.4), trimmed. */
const VLLM_V1 = `# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 12345.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 250.0
vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.0
vllm:num_requests_waiting{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.83
vllm:kv_cache_usage_perc{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.12
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.5e+06
vllm:prefix_cache_queries_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7318e+09
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 900000.0
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.557572e+06
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 5.0
vllm:num_requests_running_fake_suffix{engine="0"} 999.0
`;

describe('parseServerMetrics', () => {
  it("reads vLLM V1's text format: HELP/TYPE lines, labels, engines summed, KV the fullest, _created lines ignored", () => {
    expect(parseServerMetrics(VLLM_V1)).toEqual({
      running: 256,
      waiting: 12,
      kvUsage: 0.83,
      prefixQueries: 1.5e6,
      prefixHits: 900_000,
      preemptions: 3,
      generationTokens: 7.557572e6,
      prefixHitRate: null,
    });
  });

  it('reads the inter-token-latency histogram under its current and its older name', () => {
    const page = (name: string): string =>
      `vllm:num_requests_running 3\nvllm:num_requests_waiting 0\n${name}_bucket{le="0.01"} 10\n${name}_count{engine="0"} 40\n${name}_count{engine="1"} 60\n${name}_sum{engine="0"} 0.4\n${name}_sum{engine="1"} 1.1\n${name}_created{engine="0"} 1.7e9\n`;
    for (const name of ['vllm:inter_token_latency_seconds', 'vllm:time_per_output_token_seconds']) {
      expect(parseServerMetrics(page(name))).toMatchObject({ itlTokens: 100, itlSeconds: 1.5 });
    }
    expect(parseServerMetrics(VLLM_V1)!.itlTokens).toBeUndefined();
  });

  it('reads the prompt-tokens counter, absent when not exported', () => {
    expect(parseServerMetrics('vllm:num_requests_running 1\nvllm:num_requests_waiting 0\nvllm:prompt_tokens_total{engine="0"} 300\nvllm:prompt_tokens_total{engine="1"} 12\n')!.promptTokens).toBe(312);
    expect(parseServerMetrics(VLLM_V1)!.promptTokens).toBeUndefined();
  });

  it("takes vLLM V0's gpu_cache_usage_perc, bare counter names, no labels, CRLF line ends and timestamps", () => {
    const v0 = [
      '# TYPE vllm:num_requests_running gauge',
      'vllm:num_requests_running 3',
      'vllm:num_requests_waiting 7 1718000000000',
      'vllm:gpu_cache_usage_perc{model_name="m"} 0.5',
      'vllm:prefix_cache_queries{model_name="m"} 10',
      'vllm:prefix_cache_hits{model_name="m"} 4',
    ].join('\r\n');
    expect(parseServerMetrics(v0)).toMatchObject({ running: 3, waiting: 7, kvUsage: 0.5, prefixQueries: 10, prefixHits: 4, preemptions: null });
  });

  it('never adds a counter under two spellings (_total and bare)', () => {
    const both = 'vllm:num_requests_running 1\nvllm:num_requests_waiting 0\nvllm:prefix_cache_hits_total 5\nvllm:prefix_cache_hits 5\n';
    expect(parseServerMetrics(both)?.prefixHits).toBe(5);
  });

  it('reads label values holding braces, quotes and spaces', () => {
    const text = 'vllm:num_requests_running{model_name="we{ird} \\"name\\" x"} 4.0\nvllm:num_requests_waiting{model_name="a}b"} 2\n';
    expect(parseServerMetrics(text)).toMatchObject({ running: 4, waiting: 2, kvUsage: null });
  });

  it("reads SGLang's names", () => {
    const text = [
      'sglang:num_running_reqs{model_name="q"} 8',
      'sglang:num_queue_reqs{model_name="q"} 4',
      'sglang:token_usage{model_name="q"} 0.52',
      'sglang:cache_hit_rate{model_name="q"} 0.28',
      'sglang:generation_tokens_total{model_name="q"} 100',
    ].join('\n');
    expect(parseServerMetrics(text)).toEqual({ running: 8, waiting: 4, kvUsage: 0.52, prefixQueries: null, prefixHits: null, preemptions: null, generationTokens: 100, prefixHitRate: 0.28 });
  });

  it('tolerates garbage: null without both queue gauges, bad values skipped, KV clamped to 0..1', () => {
    for (const page of ['', 'not prometheus', '<html>404</html>', '{"detail":"Not Found"}', 'vllm:num_requests_running 3\n', 'vllm:num_requests_running{ 3\nvllm:num_requests_waiting 1\n']) {
      expect(parseServerMetrics(page), page).toBeNull();
    }
    const bad = 'vllm:num_requests_running NaN\nvllm:num_requests_running 2\nvllm:num_requests_waiting -1\nvllm:num_requests_waiting 1\nvllm:kv_cache_usage_perc 1.7\nvllm:num_requests_waiting{x="1"}\n';
    expect(parseServerMetrics(bad)).toMatchObject({ running: 2, waiting: 1, kvUsage: 1 });
  });

  it('is cheap on a full-size page (histograms included)', () => {
    const buckets = Array.from({ length: 3000 }, (_, i) => `vllm:e2e_request_latency_seconds_bucket{engine="0",le="${i}",model_name="m"} ${i}.0`).join('\n');
    const page = `${VLLM_V1}${buckets}\n`;
    expect(page.length).toBeGreaterThan(200_000);
    let best = Infinity;
    for (let run = 0; run < 5; run++) {
      const t0 = performance.now();
      for (let i = 0; i < 40; i++) parseServerMetrics(page);
      best = Math.min(best, (performance.now() - t0) / 40);
    }
    expect(parseServerMetrics(page)?.running).toBe(256);
    // Scraped twice a second per upstream; ~0.06 ms measured (best of 5, so a busy runner passes).
    expect(best).toBeLessThan(2);
  });
});
