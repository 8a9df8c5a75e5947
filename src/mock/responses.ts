import type { GenContext, Generated } from './generated.js';
import { roleHeader, textPrompt } from './prompt.js';
import { MockRequestError } from './respond.js';
import { type Body, completionLimit, generatedTokens, generateWords, ignoresEos, isObject, snippetWords, textOf } from './text.js';

const pick = <T>(v: unknown, ok: (x: unknown) => x is T, fallback: T): T => (ok(v) ? v : fallback);
const isString = (x: unknown): x is string => typeof x === 'string';
const isNumber = (x: unknown): x is number => typeof x === 'number';
const isBoolean = (x: unknown): x is boolean => typeof x === 'boolean';
const isArray = (x: unknown): x is unknown[] => Array.isArray(x);
const isTruncation = (x: unknown): x is 'auto' | 'disabled' => x === 'auto' || x === 'disabled';
const isToolChoice = (x: unknown): x is unknown => typeof x === 'string' || isObject(x);

/**
 * `POST /v1/responses`, non-streaming: every field of OpenAI's `Response` object (the request's
 * settings echoed, OpenAI's defaults otherwise) so strict SDK parsing passes.
 */
export function response(body: Body, model: string, g: GenContext): Generated {
  const input = body.input;
  const instructions = typeof body.instructions === 'string' ? body.instructions : null;
  let rendered = instructions ?? '';
  let lastUser = '';
  if (typeof input === 'string') {
    rendered += roleHeader('user') + input;
    lastUser = input;
  } else if (Array.isArray(input) && input.length > 0) {
    for (const item of input) {
      if (!isObject(item)) throw new MockRequestError(400, "each 'input' item must be an object", null, 'input');
      const text = textOf(item.content);
      rendered += roleHeader(item.role) + text;
      if (item.role === 'user') lastUser = text;
    }
  } else {
    throw new MockRequestError(400, "'input' must be a string or a non-empty array", null, 'input');
  }
  const prompt = textPrompt(rendered);
  const { requested, limit } = completionLimit(body, 'max_output_tokens');
  const tokens = generatedTokens(g.hash, limit, ignoresEos(body));
  const truncated = tokens >= requested;
  const status = truncated ? 'incomplete' : 'completed';
  const reasoning = isObject(body.reasoning) ? body.reasoning : {};
  return {
    promptTokens: prompt.tokens,
    completionTokens: tokens,
    work: [{ prompt, outputs: [tokens] }],
    cacheField: 'input_tokens_details',
    payload: {
      id: `resp_${g.id}`,
      object: 'response',
      created_at: g.created,
      status,
      background: false,
      completed_at: truncated ? null : g.created,
      error: null,
      incomplete_details: truncated ? { reason: 'max_output_tokens' } : null,
      instructions,
      max_output_tokens: pick(body.max_output_tokens, isNumber, null),
      metadata: pick(body.metadata, isObject, {}),
      model,
      output: [
        {
          type: 'message',
          id: `msg_${g.id}`,
          status,
          role: 'assistant',
          content: [{ type: 'output_text', text: generateWords(tokens, g.hash, ['mock', 'reply', 'to', ...snippetWords(lastUser)]), annotations: [], logprobs: [] }],
        },
      ],
      parallel_tool_calls: pick(body.parallel_tool_calls, isBoolean, true),
      previous_response_id: pick(body.previous_response_id, isString, null),
      prompt_cache_key: pick(body.prompt_cache_key, isString, null),
      reasoning: { effort: reasoning.effort ?? null, summary: reasoning.summary ?? null },
      safety_identifier: pick(body.safety_identifier, isString, null),
      service_tier: 'default',
      store: pick(body.store, isBoolean, true),
      temperature: pick(body.temperature, isNumber, 1),
      text: pick(body.text, isObject, { format: { type: 'text' }, verbosity: 'medium' }),
      tool_choice: pick(body.tool_choice, isToolChoice, 'auto'),
      tools: pick(body.tools, isArray, []),
      top_logprobs: pick(body.top_logprobs, isNumber, 0),
      top_p: pick(body.top_p, isNumber, 1),
      truncation: pick(body.truncation, isTruncation, 'disabled'),
      usage: {
        input_tokens: prompt.tokens,
        input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
        output_tokens: tokens,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: prompt.tokens + tokens,
      },
      user: pick(body.user, isString, null),
    },
  };
}
