import { Prng } from './hash.js';
import { MockRequestError } from './respond.js';

/** A parsed JSON request body. */
export type Body = Record<string, unknown>;

/** Hard ceiling on generated tokens per choice, whatever `max_tokens` says. */
export const MAX_GENERATED_TOKENS = 256;
const DEFAULT_MAX_TOKENS = 64;

export const isObject = (v: unknown): v is Body => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Text of a message `content`: a string, or the `text` of each part of an array. */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let out = '';
  for (const part of content) {
    if (isObject(part) && typeof part.text === 'string') out += part.text;
  }
  return out;
}

/** The words of the first 24 characters of `text`, to echo in a reply. */
export function snippetWords(text: string): string[] {
  return text
    .slice(0, 24)
    .split(/\s+/)
    .filter((w) => w.length > 0);
}

function positiveInt(body: Body, field: string): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new MockRequestError(400, `'${field}' must be a positive integer`, null, field);
  }
  return v;
}

/** How many tokens a choice may generate: `requested` as asked, `limit` capped for the mock. */
export function completionLimit(body: Body, ...fields: string[]): { requested: number; limit: number } {
  let requested: number | undefined;
  for (const f of fields) requested ??= positiveInt(body, f);
  requested ??= DEFAULT_MAX_TOKENS;
  return { requested, limit: Math.min(requested, MAX_GENERATED_TOKENS) };
}

/** `n`, default 1, bounded so a typo cannot make the mock build a huge answer. */
export function choiceCount(body: Body): number {
  const n = positiveInt(body, 'n') ?? 1;
  if (n > 128) throw new MockRequestError(400, "'n' must be at most 128", null, 'n');
  return n;
}

/**
 * Tokens generated for a choice with hash `h`: 1 ‥ limit, or exactly `limit` when the request sets
 * vLLM's `ignore_eos` (as `vllm bench` does, so a load has known lengths).
 */
export const generatedTokens = (h: number, limit: number, ignoreEos = false): number => (ignoreEos ? limit : 1 + (h % limit));

/** vLLM's sampling parameter `ignore_eos`: generate until the token limit. */
export const ignoresEos = (body: Body): boolean => body.ignore_eos === true;

const VOCAB: readonly string[] = [
  'alpha', 'batch', 'cache', 'delta', 'epoch', 'fast', 'graph', 'hash', 'index', 'join', 'kernel', 'layer',
  'model', 'node', 'output', 'prompt', 'query', 'reply', 'slot', 'token', 'unit', 'vector', 'weight', 'yield',
  'zero', 'and', 'the', 'of', 'to', 'in', 'is', 'it', 'a', 'as', 'at', 'be', 'by', 'for', 'from', 'has',
  'on', 'or', 'so', 'that', 'this', 'was', 'with', 'more', 'some', 'many', 'each', 'every', 'one', 'two',
  'three', 'four', 'five', 'small', 'large', 'quick', 'steady', 'simple', 'clear', 'done',
];

/** `count` words: the `lead` words first, then filler picked by a PRNG seeded with `h`. */
export function generateWords(count: number, h: number, lead: readonly string[]): string {
  let out = '';
  let i = 0;
  for (; i < count && i < lead.length; i++) out += i === 0 ? lead[i]! : ` ${lead[i]!}`;
  if (i < count) {
    const prng = new Prng(h);
    for (; i < count; i++) {
      const word = VOCAB[prng.nextU32() & 63]!;
      out += i === 0 ? word : ` ${word}`;
    }
  }
  return out;
}
