import type { Usage } from '../domain/index.js';

/** Bodies up to this size are parsed whole; larger ones first try to parse only their `usage`. */
const WHOLE_PARSE_LIMIT = 32 * 1024;

/**
 * Token usage of an upstream 2xx body: chat/completions (`prompt_tokens`, `completion_tokens`,
 * `prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`), responses
 * (`input_tokens`, `output_tokens`, `input_tokens_details`, `output_tokens_details`) or embeddings
 * (`prompt_tokens`, `total_tokens`). Missing numbers count as 0; the total defaults to
 * input + output. Null when the body is not JSON or has no `usage` object.
 *
 * Large bodies (embeddings, long completions) are not parsed whole: the top-level `usage` object is
 * found textually (the last `"usage":` key) and only it is parsed; anything unexpected falls back
 * to a full parse.
 */
export function extractUsage(bodyJsonText: string): Usage | null {
  if (bodyJsonText.length > WHOLE_PARSE_LIMIT) {
    const usage = usageSlice(bodyJsonText);
    if (usage !== null) {
      try {
        const obj: unknown = JSON.parse(usage);
        if (isObject(obj) && (obj['total_tokens'] !== undefined || obj['prompt_tokens'] !== undefined || obj['input_tokens'] !== undefined)) {
          return usageFromObject(obj);
        }
      } catch {
        // fall through to the full parse
      }
    }
  }
  let body: unknown;
  try {
    body = JSON.parse(bodyJsonText);
  } catch {
    return null;
  }
  return isObject(body) ? usageFromObject(body['usage']) : null;
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

/**
 * The text of the object after the last `"usage"` key, or null. Inside JSON strings quotes are
 * escaped, so `"usage"` followed by ':' is a key. Only the small usage object is walked.
 */
function usageSlice(text: string): string | null {
  const at = text.lastIndexOf('"usage"');
  if (at === -1) return null;
  let i = at + 7;
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) !== 0x3a /* : */) return null;
  i++;
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) !== 0x7b /* { */) return null;
  const start = i;
  let depth = 0;
  let inString = false;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b) depth++;
    else if (c === 0x7d /* } */ && --depth === 0) return text.slice(start, i + 1);
  }
  return null;
}

const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
