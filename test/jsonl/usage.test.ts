import { describe, expect, it } from 'vitest';

import { emptyUsage } from '../../src/domain/index.js';
import { addUsage, usageOfBody } from '../../src/jsonl/usage.js';

const chat = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hi "usage": {"prompt_tokens": 999}' } }],
  usage: {
    prompt_tokens: 10,
    completion_tokens: 5,
    total_tokens: 15,
    prompt_tokens_details: { cached_tokens: 4 },
    completion_tokens_details: { reasoning_tokens: 2 },
  },
  system_fingerprint: 'fp',
};
const responses = {
  id: 'resp_1',
  object: 'response',
  output: [{ type: 'message', content: [{ type: 'output_text', text: 'x' }] }],
  usage: { input_tokens: 20, input_tokens_details: { cached_tokens: 8 }, output_tokens: 7, output_tokens_details: { reasoning_tokens: 3 }, total_tokens: 27 },
  metadata: {},
};
const embeddings = { object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }], model: 'e', usage: { prompt_tokens: 6, total_tokens: 6 } };

describe('usageOfBody', () => {
  it('reads chat/completions usage', () => {
    expect(usageOfBody(JSON.stringify(chat))).toEqual({ inputTokens: 10, cachedTokens: 4, outputTokens: 5, reasoningTokens: 2, totalTokens: 15 });
  });

  it('reads responses usage', () => {
    expect(usageOfBody(JSON.stringify(responses))).toEqual({ inputTokens: 20, cachedTokens: 8, outputTokens: 7, reasoningTokens: 3, totalTokens: 27 });
  });

  it('reads embeddings usage', () => {
    expect(usageOfBody(JSON.stringify(embeddings))).toEqual({ inputTokens: 6, cachedTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 6 });
  });

  it('takes the same numbers from large bodies (partial parse) as from small ones', () => {
    const bigEmb = { ...embeddings, data: Array.from({ length: 2000 }, (_, i) => ({ object: 'embedding', index: i, embedding: [0.5, -1e-7, 3] })) };
    expect(usageOfBody(JSON.stringify(bigEmb, null, 2))).toEqual(usageOfBody(JSON.stringify(embeddings)));
    const bigChat = { ...chat, choices: [{ message: { content: `${'a'.repeat(50_000)} "usage": {"prompt_tokens": 1}` } }] };
    expect(usageOfBody(JSON.stringify(bigChat))).toEqual(usageOfBody(JSON.stringify(chat)));
  });

  it('counts missing numbers as 0 and defaults the total', () => {
    expect(usageOfBody('{"usage":{"prompt_tokens":3,"completion_tokens":4}}')).toEqual({
      inputTokens: 3,
      cachedTokens: 0,
      outputTokens: 4,
      reasoningTokens: 0,
      totalTokens: 7,
    });
    expect(usageOfBody('{"usage":{}}')).toEqual(emptyUsage());
  });

  it('null without usage, undefined for a body that is not a JSON object', () => {
    expect(usageOfBody('{"id":1}')).toBeNull();
    expect(usageOfBody('not json')).toBeUndefined();
    expect(usageOfBody('[1]')).toBeUndefined();
    expect(usageOfBody('{"usage":null}')).toBeNull();
  });

  it('addUsage sums', () => {
    const u = emptyUsage();
    addUsage(u, usageOfBody(JSON.stringify(chat))!);
    addUsage(u, usageOfBody(JSON.stringify(responses))!);
    expect(u).toEqual({ inputTokens: 30, cachedTokens: 12, outputTokens: 12, reasoningTokens: 5, totalTokens: 42 });
  });
});
