import type { GenContext, Generated, Work } from './generated.js';
import { mix } from './hash.js';
import { idsPrompt, type Prompt, roleHeader, textPrompt } from './prompt.js';
import { MockRequestError } from './respond.js';
import { type Body, choiceCount, completionLimit, generatedTokens, generateWords, ignoresEos, isObject, snippetWords, textOf } from './text.js';

const finishReason = (tokens: number, requested: number): 'length' | 'stop' => (tokens >= requested ? 'length' : 'stop');

/** `POST /v1/chat/completions`, shaped like vLLM's `chat.completion`. */
export function chatCompletion(body: Body, model: string, g: GenContext): Generated {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new MockRequestError(400, "'messages' must be a non-empty array", null, 'messages');
  }
  let rendered = '';
  let lastUser = '';
  for (const m of messages) {
    if (!isObject(m)) throw new MockRequestError(400, 'each message must be an object', null, 'messages');
    const text = textOf(m.content);
    rendered += roleHeader(m.role) + text;
    if (m.role === 'user') lastUser = text;
  }
  const prompt = textPrompt(rendered);
  const n = choiceCount(body);
  const { requested, limit } = completionLimit(body, 'max_tokens', 'max_completion_tokens');
  const ignoreEos = ignoresEos(body);
  const lead = ['mock', 'reply', 'to', ...snippetWords(lastUser)];
  const choices: unknown[] = [];
  const outputs: number[] = [];
  let completionTokens = 0;
  for (let i = 0; i < n; i++) {
    const h = i === 0 ? g.hash : mix(g.hash, i);
    const tokens = generatedTokens(h, limit, ignoreEos);
    completionTokens += tokens;
    outputs.push(tokens);
    choices.push({
      index: i,
      message: { role: 'assistant', content: generateWords(tokens, h, lead), tool_calls: [] },
      logprobs: null,
      finish_reason: finishReason(tokens, requested),
      stop_reason: null,
    });
  }
  const promptTokens = prompt.tokens;
  return {
    promptTokens,
    completionTokens,
    work: [{ prompt, outputs }],
    cacheField: 'prompt_tokens_details',
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

/** A prompt of `/v1/completions` and the words to echo. */
interface TextPrompt {
  prompt: Prompt;
  lead: string[];
}

const isTokenIds = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number');

function promptsOf(prompt: unknown): TextPrompt[] {
  const one = (p: unknown): TextPrompt => {
    if (typeof p === 'string') return { prompt: textPrompt(p, 1), lead: ['mock', 'completion', 'of', ...snippetWords(p)] };
    if (isTokenIds(p) && p.length > 0) return { prompt: idsPrompt(p), lead: ['mock', 'completion', 'of', 'tokens'] };
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
  const ignoreEos = ignoresEos(body);
  const choices: unknown[] = [];
  const work: Work[] = [];
  let promptTokens = 0;
  let completionTokens = 0;
  for (let p = 0; p < prompts.length; p++) {
    const { prompt, lead } = prompts[p]!;
    promptTokens += prompt.tokens;
    const outputs: number[] = [];
    for (let j = 0; j < n; j++) {
      const index = p * n + j;
      const h = index === 0 ? g.hash : mix(g.hash, index);
      const tokens = generatedTokens(h, limit, ignoreEos);
      completionTokens += tokens;
      outputs.push(tokens);
      choices.push({ index, text: generateWords(tokens, h, lead), logprobs: null, finish_reason: finishReason(tokens, requested), stop_reason: null });
    }
    work.push({ prompt, outputs });
  }
  return {
    promptTokens,
    completionTokens,
    work,
    cacheField: 'prompt_tokens_details',
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
