import type { Usage } from '../domain/index.js';

/**
 * Token usage of an upstream 2xx body: chat/completions (`prompt_tokens`, `completion_tokens`,
 * `prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`), responses
 * (`input_tokens`, `output_tokens`, `input_tokens_details`, `output_tokens_details`) or embeddings
 * (`prompt_tokens`, `total_tokens`). Missing numbers count as 0; the total defaults to
 * input + output. Null for a JSON object without a `usage` object; undefined when the body is not
 * a JSON object at all (it must not reach the output file, where it is written as is).
 *
 * Every body is parsed whole, large ones too (≈ 0.5 ms for an 80 KB embedding answer): finding
 * `usage` by text and parsing only it let a body that was not JSON corrupt the output file.
 */
export function usageOfBody(bodyJsonText: string): Usage | null | undefined {
  return factsOfBody(bodyJsonText)?.usage;
}

/** What the output line needs of a 2xx body, from one parse: its usage and its `id` (a string, else null). */
export function factsOfBody(bodyJsonText: string): { usage: Usage | null; id: string | null } | undefined {
  let body: unknown;
  try {
    body = JSON.parse(bodyJsonText);
  } catch {
    return undefined;
  }
  if (!isObject(body)) return undefined;
  const id = body['id'];
  return { usage: usageFromObject(body['usage']), id: typeof id === 'string' && id.length > 0 ? id : null };
}

/** Usage from an already parsed `usage` object (null when it is not an object). */
export function usageFromObject(usage: unknown): Usage | null {
  if (!isObject(usage)) return null;
  const hasInput = usage['input_tokens'] !== undefined || usage['output_tokens'] !== undefined;
  const input = hasInput ? num(usage['input_tokens']) : num(usage['prompt_tokens']);
  const output = hasInput ? num(usage['output_tokens']) : num(usage['completion_tokens']);
  const inDetails = usage[hasInput ? 'input_tokens_details' : 'prompt_tokens_details'];
  const outDetails = usage[hasInput ? 'output_tokens_details' : 'completion_tokens_details'];
  const total = usage['total_tokens'];
  return {
    inputTokens: input,
    cachedTokens: isObject(inDetails) ? num(inDetails['cached_tokens']) : 0,
    outputTokens: output,
    reasoningTokens: isObject(outDetails) ? num(outDetails['reasoning_tokens']) : 0,
    totalTokens: typeof total === 'number' && Number.isFinite(total) ? total : input + output,
  };
}

export function addUsage(into: Usage, u: Usage): void {
  into.inputTokens += u.inputTokens;
  into.cachedTokens += u.cachedTokens;
  into.outputTokens += u.outputTokens;
  into.reasoningTokens += u.reasoningTokens;
  into.totalTokens += u.totalTokens;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

