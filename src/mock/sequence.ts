import { BLOCK_TOKENS, type Prompt } from './prompt.js';

export const WAITING = 0;
export const PREFILL = 1;
export const DECODE = 2;
export const FINISHED = 3;

/** What a finished request learns from the engine, for its `usage`. */
export interface JobResult {
  /** Prompt tokens served from the prefix cache (first choice of each prompt, as vLLM reports it). */
  cachedTokens: number;
  /** Prompt tokens this request wrote into the prefix cache. */
  cacheWriteTokens: number;
}

/** One HTTP request: its sequences (one per prompt × choice) finish before it is answered. */
export class Job {
  remaining = 0;
  cachedTokens = 0;
  cacheWriteTokens = 0;
  cancelled = false;
  readonly seqs: Sequence[] = [];

  constructor(readonly onDone: (result: JobResult) => void) {}
}

/** One engine request, as vLLM schedules it: a prompt to prefill, then one token per step. */
export class Sequence {
  state = WAITING;
  prefillLeft = 0;
  /** The step at whose end its first token came out (it then holds step − startStep + 1 generated tokens). */
  startStep = 0;
  finishStep = 0;
  /** Prefix-cache blocks it references. */
  held = 0;
  /** KV tokens reserved for it at admission. */
  reserved = 0;
  cached = 0;

  constructor(
    readonly job: Job,
    readonly prompt: Prompt,
    /** Chained block keys of the prompt; null when the prefix cache is not used for it. */
    readonly keys: readonly number[] | null,
    readonly outputTokens: number,
    /** The first choice of its prompt: the one whose cache hit the request reports. */
    readonly first: boolean,
    readonly priority: number,
    readonly order: number,
  ) {}

  /** Prompt tokens it holds outside shared cache blocks. */
  get privatePromptTokens(): number {
    return this.prompt.tokens - BLOCK_TOKENS * this.held;
  }
}
