import { mix } from './hash.js';
import { MockRequestError } from './respond.js';
import {
  approxTokens,
  type Body,
  choiceCount,
  completionLimit,
  generatedTokens,
  generateWords,
  isObject,
  snippetWords,
  textOf,
} from './text.js';

/** What a route produces: the response object and the tokens it "generated" (for the delay). */
export interface Generated {
  payload: unknown;
  completionTokens: number;
}

/** Per-request inputs of generation: a unique id, the time, and the hash of the body. */
export interface GenContext {
  id: string;
  created: number;
  hash: number;
}

const finishReason = (tokens: number, requested: number): 'length' | 'stop' => (tokens >= requested ? 'length' : 'stop');

/** `POST /v1/chat/completions`, shaped like vLLM's `chat.completion`. */
export function chatCompletion(body: Body, model: string, g: GenContext): Generated {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new MockRequestError(400, "'messages' must be a non-empty array", null, 'messages');
  }
  let chars = 0;
  let lastUser = '';
  for (const m of messages) {
    if (!isObject(m)) throw new MockRequestError(400, 'each message must be an object', null, 'messages');
    const text = textOf(m.content);
    chars += text.length;
    if (m.role === 'user') lastUser = text;
  }
  const promptTokens = approxTokens(chars) + 4 * messages.length;
  const n = choiceCount(body);
  const { requested, limit } = completionLimit(body, 'max_tokens', 'max_completion_tokens');
  const lead = ['mock', 'reply', 'to', ...snippetWords(lastUser)];
  const choices: unknown[] = [];
  let completionTokens = 0;
  for (let i = 0; i < n; i++) {
    const h = i === 0 ? g.hash : mix(g.hash, i);
    const tokens = generatedTokens(h, limit);
    completionTokens += tokens;
    choices.push({
      index: i,
      message: { role: 'assistant', content: generateWords(tokens, h, lead), tool_calls: [] },
      logprobs: null,
      finish_reason: finishReason(tokens, requested),
      stop_reason: null,
    });
  }
  return {
    completionTokens,
    payload: {
      id: `chatcmpl-${g.id}`,
      object: 'chat.completion',
      created: g.created,
      model,
      choices,
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    },
  };
}

/** A prompt of `/v1/completions`: its size in tokens and the words to echo. */
interface Prompt {
  tokens: number;
  lead: string[];
}

const isTokenIds = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number');

function promptsOf(prompt: unknown): Prompt[] {
  const one = (p: unknown): Prompt => {
    if (typeof p === 'string') return { tokens: Math.max(1, approxTokens(p.length)), lead: ['mock', 'completion', 'of', ...snippetWords(p)] };
    if (isTokenIds(p) && p.length > 0) return { tokens: p.length, lead: ['mock', 'completion', 'of', 'tokens'] };
    throw new MockRequestError(400, "'prompt' must be a string, an array of strings, or token ids", null, 'prompt');
  };
  if (typeof prompt === 'string' || isTokenIds(prompt)) return [one(prompt)];
  if (Array.isArray(prompt) && prompt.length > 0) return prompt.map(one);
  throw new MockRequestError(400, "'prompt' is required", null, 'prompt');
}

/** `POST /v1/completions`, shaped like vLLM's `text_completion`: one choice per prompt × n. */
export function textCompletion(body: Body, model: string, g: GenContext): Generated {
  const prompts = promptsOf(body.prompt);
  const n = choiceCount(body);
  const { requested, limit } = completionLimit(body, 'max_tokens', 'max_completion_tokens');
  const choices: unknown[] = [];
  let promptTokens = 0;
  let completionTokens = 0;
  for (let p = 0; p < prompts.length; p++) {
    const prompt = prompts[p]!;
    promptTokens += prompt.tokens;
    for (let j = 0; j < n; j++) {
      const index = p * n + j;
      const h = index === 0 ? g.hash : mix(g.hash, index);
      const tokens = generatedTokens(h, limit);
      completionTokens += tokens;
      choices.push({ index, text: generateWords(tokens, h, prompt.lead), logprobs: null, finish_reason: finishReason(tokens, requested), stop_reason: null });
    }
  }
  return {
    completionTokens,
    payload: {
      id: `cmpl-${g.id}`,
      object: 'text_completion',
      created: g.created,
      model,
      choices,
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    },
  };
}

/** `POST /v1/responses` (a minimal, non-streaming Responses API answer). */
export function response(body: Body, model: string, g: GenContext): Generated {
  const input = body.input;
  let chars = typeof body.instructions === 'string' ? body.instructions.length : 0;
  let items = 0;
  let lastUser = '';
  if (typeof input === 'string') {
    chars += input.length;
    items = 1;
    lastUser = input;
  } else if (Array.isArray(input) && input.length > 0) {
    for (const item of input) {
      if (!isObject(item)) throw new MockRequestError(400, "each 'input' item must be an object", null, 'input');
      const text = textOf(item.content);
      chars += text.length;
      items++;
      if (item.role === 'user') lastUser = text;
    }
  } else {
    throw new MockRequestError(400, "'input' must be a string or a non-empty array", null, 'input');
  }
  const inputTokens = approxTokens(chars) + 4 * items;
  const { requested, limit } = completionLimit(body, 'max_output_tokens');
  const tokens = generatedTokens(g.hash, limit);
  const truncated = tokens >= requested;
  return {
    completionTokens: tokens,
    payload: {
      id: `resp_${g.id}`,
      object: 'response',
      created_at: g.created,
      status: truncated ? 'incomplete' : 'completed',
      incomplete_details: truncated ? { reason: 'max_output_tokens' } : null,
      error: null,
      model,
      output: [
        {
          type: 'message',
          id: `msg_${g.id}`,
          status: truncated ? 'incomplete' : 'completed',
          role: 'assistant',
          content: [{ type: 'output_text', text: generateWords(tokens, g.hash, ['mock', 'reply', 'to', ...snippetWords(lastUser)]), annotations: [] }],
        },
      ],
      usage: { input_tokens: inputTokens, output_tokens: tokens, total_tokens: inputTokens + tokens },
    },
  };
}
