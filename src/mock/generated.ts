import type { Prompt } from './prompt.js';

/** What the engine runs for one prompt: the tokens each of its choices generates. */
export interface Work {
  prompt: Prompt;
  outputs: number[];
}

/** The answer object of a route, with the usage figures the timing models and metrics need. */
export interface Generated {
  payload: { usage: Record<string, unknown> } & Record<string, unknown>;
  promptTokens: number;
  completionTokens: number;
  work: Work[];
  /** Where `usage` reports prompt tokens served from the prefix cache; null when it does not. */
  cacheField: 'prompt_tokens_details' | 'input_tokens_details' | null;
}

/** Per-request inputs of generation: a unique id, the time, and the hash of the body. */
export interface GenContext {
  id: string;
  created: number;
  hash: number;
}

/** Writes the prefix-cache figures of a served request into its `usage`. */
export function reportCachedTokens(g: Generated, cached: number, written: number): void {
  if (g.cacheField === 'prompt_tokens_details') g.payload.usage.prompt_tokens_details = { cached_tokens: cached };
  else if (g.cacheField === 'input_tokens_details') g.payload.usage.input_tokens_details = { cached_tokens: cached, cache_write_tokens: written };
}
