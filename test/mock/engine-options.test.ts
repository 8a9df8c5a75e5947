import { describe, expect, it } from 'vitest';

import { defaultMockOptions, parseMockOptions, resolveMockOptions } from '../../src/mock/index.js';

describe('vLLM-shaped engine options', () => {
  it('are off by default, with Llama-3-8B-on-H100-like defaults once --max-num-seqs turns them on', () => {
    expect(defaultMockOptions).toMatchObject({
      maxNumSeqs: 0,
      maxNumBatchedTokens: 8192,
      prefillMsPerToken: 0.03,
      decodeMsPerToken: 6.5,
      decodeGrowthPerSeq: 0.03,
      prefixCacheTokens: 0,
      kvCacheTokens: 400_000,
      schedulingPolicy: 'fcfs',
    });
    expect(parseMockOptions({ 'max-num-seqs': '256' }).maxNumSeqs).toBe(256);
  });

  it('read every engine flag', () => {
    const o = parseMockOptions({
      'max-num-seqs': '64',
      'max-num-batched-tokens': '2048',
      'prefill-ms-per-token': '0.12',
      'decode-ms-per-token': '10',
      'decode-growth-per-seq': '0.05',
      'prefix-cache-tokens': '100000',
      'kv-cache-tokens': '200000',
      'scheduling-policy': 'priority',
    });
    expect(o).toMatchObject({
      maxNumSeqs: 64,
      maxNumBatchedTokens: 2048,
      prefillMsPerToken: 0.12,
      decodeMsPerToken: 10,
      decodeGrowthPerSeq: 0.05,
      prefixCacheTokens: 100_000,
      kvCacheTokens: 200_000,
      schedulingPolicy: 'priority',
    });
  });

  it('reject bad values and flags of the timing model not in use, naming the flag', () => {
    expect(() => parseMockOptions({ 'prefix-cache-tokens': '1000' })).toThrow('--prefix-cache-tokens needs --max-num-seqs');
    expect(() => parseMockOptions({ 'scheduling-policy': 'priority' })).toThrow('--scheduling-policy needs --max-num-seqs');
    expect(() => parseMockOptions({ 'max-num-seqs': '8', 'scheduling-policy': 'lifo' })).toThrow('--scheduling-policy must be "fcfs" or "priority"');
    expect(() => parseMockOptions({ 'max-num-seqs': '8', capacity: '4' })).toThrow('--capacity does not apply with --max-num-seqs');
    expect(() => parseMockOptions({ 'max-num-seqs': '8', 'latency-ms': '5' })).toThrow('--latency-ms does not apply');
    expect(() => parseMockOptions({ 'max-num-seqs': '1.5' })).toThrow('--max-num-seqs');
    expect(() => parseMockOptions({ 'max-num-seqs': '16', 'max-num-batched-tokens': '8' })).toThrow('--max-num-batched-tokens must be ≥ --max-num-seqs');
    expect(() => parseMockOptions({ 'max-num-seqs': '8', 'decode-ms-per-token': '-1' })).toThrow('--decode-ms-per-token must be a number ≥ 0');
    expect(() => resolveMockOptions({ maxNumSeqs: 8, kvCacheTokens: 0 })).toThrow('--kv-cache-tokens');
  });
});
