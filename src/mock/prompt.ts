import { mix } from './hash.js';

/**
 * The mock's one tokenisation, used for usage, the prefix cache and the engine's timing alike: a
 * prompt is a string (one token per 4 characters, rounded up) or token ids (one token each). A
 * chat or responses prompt is rendered to one string first, each message led by a 16-character
 * role header (its 4 template tokens), so shared leading messages give a shared prefix.
 */
export interface Prompt {
  tokens: number;
  text: string | null;
  ids: readonly number[] | null;
}

/** Tokens per KV block, as vLLM's default `--block-size`. */
export const BLOCK_TOKENS = 16;
const CHARS_PER_TOKEN = 4;
const HEADER_CHARS = 4 * CHARS_PER_TOKEN;

/** ~4 characters per token, like a BPE tokenizer on English. */
export const approxTokens = (chars: number): number => Math.ceil(chars / CHARS_PER_TOKEN);

/** A string prompt; `/v1/completions` and `/v1/embeddings` count an empty one as 1 token (`minTokens`). */
export const textPrompt = (text: string, minTokens = 0): Prompt => ({ tokens: Math.max(minTokens, approxTokens(text.length)), text, ids: null });

export const idsPrompt = (ids: readonly number[]): Prompt => ({ tokens: ids.length, text: null, ids });

/** The role header of a rendered message: exactly HEADER_CHARS characters. */
export const roleHeader = (role: unknown): string => `<|${typeof role === 'string' ? role : ''}|>`.padEnd(HEADER_CHARS, ' ').slice(0, HEADER_CHARS);

/**
 * Chained keys of the prompt's full blocks: key i covers blocks 0..i (vLLM's automatic prefix
 * caching hashes a block with its parent's hash), so equal keys mean an equal prefix. `salt`
 * separates models. Two 32-bit hashes make a 52-bit key, so collisions are negligible.
 */
export function blockKeys(p: Prompt, salt: number): number[] {
  const blocks = Math.floor(p.tokens / BLOCK_TOKENS);
  const keys = new Array<number>(blocks);
  let a = mix(salt, 1);
  let b = mix(salt, 2);
  for (let i = 0; i < blocks; i++) {
    let h1 = a ^ 0x811c9dc5;
    let h2 = b;
    if (p.text !== null) {
      const end = Math.min(p.text.length, (i + 1) * BLOCK_TOKENS * CHARS_PER_TOKEN);
      for (let c = i * BLOCK_TOKENS * CHARS_PER_TOKEN; c < end; c++) {
        const u = p.text.charCodeAt(c);
        h1 = Math.imul(h1 ^ u, 0x01000193);
        h2 = Math.imul(h2 ^ u, 0x5bd1e995) ^ (h2 >>> 15);
      }
    } else {
      const ids = p.ids!;
      for (let t = i * BLOCK_TOKENS; t < (i + 1) * BLOCK_TOKENS; t++) {
        const u = ids[t]! | 0;
        h1 = Math.imul(h1 ^ u, 0x01000193);
        h2 = Math.imul(h2 ^ u, 0x5bd1e995) ^ (h2 >>> 15);
      }
    }
    a = mix(h1, i);
    b = mix(h2, ~i);
    keys[i] = (a >>> 12) * 4294967296 + b;
  }
  return keys;
}
