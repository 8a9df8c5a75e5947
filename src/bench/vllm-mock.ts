import { request } from 'undici';

import { parseServerMetrics } from '../upstream/server-metrics.js';
import { type Service, startMock } from './services.js';

/**
 * The vLLM-shaped `besh mock` (docs/simulator.md) for the GPU-efficiency scenarios, and what its
 * `GET /metrics` says. Every figure of these scenarios is a ratio of two runs against fresh mocks
 * started with the same flags: the prefix cache is warm after a run (`/mock/reset` keeps it), so
 * a mock is never reused between the runs compared.
 */
export interface VllmFlags {
  maxNumSeqs: number;
  maxNumBatchedTokens?: number;
  prefillMsPerToken?: number;
  decodeMsPerToken?: number;
  decodeGrowthPerSeq?: number;
  prefixCacheTokens?: number;
  kvCacheTokens?: number;
  schedulingPolicy?: 'fcfs' | 'priority';
}

/**
 * "Like Llama-3-8B (BF16) on one H100" as docs/simulator.md recommends, except `--max-num-seqs`
 * 256 (vLLM's default on every GPU but the ≥ 70 GiB non-A100 ones): the decode rate at 256 is
 * already 92 % of the 1,024 one (4.57 vs 4.97 output tokens/ms), and the scenarios that need a
 * smaller batch or cache say so.
 */
export const H100: Required<Omit<VllmFlags, 'schedulingPolicy'>> = {
  maxNumSeqs: 256,
  maxNumBatchedTokens: 8192,
  prefillMsPerToken: 0.03,
  decodeMsPerToken: 6.5,
  decodeGrowthPerSeq: 0.03,
  prefixCacheTokens: 400_000,
  kvCacheTokens: 400_000,
};

const FLAG_NAMES: Record<keyof VllmFlags, string> = {
  maxNumSeqs: '--max-num-seqs',
  maxNumBatchedTokens: '--max-num-batched-tokens',
  prefillMsPerToken: '--prefill-ms-per-token',
  decodeMsPerToken: '--decode-ms-per-token',
  decodeGrowthPerSeq: '--decode-growth-per-seq',
  prefixCacheTokens: '--prefix-cache-tokens',
  kvCacheTokens: '--kv-cache-tokens',
  schedulingPolicy: '--scheduling-policy',
};

export function vllmArgs(f: VllmFlags): string[] {
  const args: string[] = [];
  for (const [k, flag] of Object.entries(FLAG_NAMES) as Array<[keyof VllmFlags, string]>) {
    const v = f[k];
    if (v !== undefined) args.push(flag, String(v));
  }
  return args;
}

export const startVllmMock = (cwd: string, f: VllmFlags, name = 'vllm-mock'): Promise<Service> => startMock(0, cwd, vllmArgs(f), name);

/** The counters of one scrape that the scenarios compare. */
export interface VllmCounters {
  promptTokens: number;
  generationTokens: number;
  prefixQueries: number;
  prefixHits: number;
}

/** GET /metrics of a mock, read with BESH's own parser of vLLM's page. */
export async function scrapeVllm(mockUrl: string): Promise<VllmCounters> {
  const res = await request(`${mockUrl}/metrics`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`GET ${mockUrl}/metrics: HTTP ${res.statusCode}`);
  const m = parseServerMetrics(text);
  if (m === null) throw new Error(`GET ${mockUrl}/metrics: no vLLM figures`);
  return { promptTokens: m.promptTokens ?? 0, generationTokens: m.generationTokens ?? 0, prefixQueries: m.prefixQueries ?? 0, prefixHits: m.prefixHits ?? 0 };
}

/** Summed over several mocks. */
export async function scrapeAll(urls: readonly string[]): Promise<VllmCounters> {
  const sum: VllmCounters = { promptTokens: 0, generationTokens: 0, prefixQueries: 0, prefixHits: 0 };
  for (const c of await Promise.all(urls.map(scrapeVllm))) for (const k of Object.keys(sum) as Array<keyof VllmCounters>) sum[k] += c[k];
  return sum;
}

/** What the server(s) did between two scrapes. */
export interface ServedWork {
  /** Prompt + completion tokens answered. */
  tokens: number;
  promptTokens: number;
  generationTokens: number;
  /** Prompt tokens served from the prefix cache ÷ prompt tokens looked up. */
  hitRate: number;
}

export function servedBetween(a: VllmCounters, b: VllmCounters): ServedWork {
  const promptTokens = b.promptTokens - a.promptTokens;
  const generationTokens = b.generationTokens - a.generationTokens;
  const queries = b.prefixQueries - a.prefixQueries;
  return { tokens: promptTokens + generationTokens, promptTokens, generationTokens, hitRate: queries > 0 ? (b.prefixHits - a.prefixHits) / queries : 0 };
}
