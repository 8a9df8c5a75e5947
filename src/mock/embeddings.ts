import type { GenContext, Generated } from './generated.js';
import { hashString, Prng } from './hash.js';
import { idsPrompt, type Prompt, textPrompt } from './prompt.js';
import { MockRequestError } from './respond.js';
import type { Body } from './text.js';

const isTokenIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');

/** Each input as text to embed (token ids joined) with its prompt. */
function inputsOf(input: unknown): { text: string; prompt: Prompt }[] {
  const one = (x: unknown): { text: string; prompt: Prompt } => {
    if (typeof x === 'string') return { text: x, prompt: textPrompt(x, 1) };
    if (isTokenIds(x)) return { text: x.join(','), prompt: idsPrompt(x) };
    throw new MockRequestError(400, "'input' must be a string, an array of strings, or token ids", null, 'input');
  };
  if (typeof input === 'string' || isTokenIds(input)) return [one(input)];
  if (Array.isArray(input) && input.length > 0) return input.map(one);
  throw new MockRequestError(400, "'input' is required", null, 'input');
}

/** A unit vector of `dims` components, determined by `text` and `seed`. */
export function embed(text: string, dims: number, seed: number): Float32Array {
  const prng = new Prng(hashString(text, seed));
  const v = new Float32Array(dims);
  let norm = 0;
  for (let i = 0; i < dims; i++) {
    const x = prng.next() * 2 - 1;
    v[i] = x;
    norm += x * x;
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < dims; i++) v[i] = v[i]! / norm;
  return v;
}

/** `POST /v1/embeddings`; honours `dimensions` and `encoding_format: 'base64'` (the openai SDK default). */
export function embeddings(body: Body, model: string, g: GenContext, defaultDims: number, seed: number): Generated {
  const inputs = inputsOf(body.input);
  let dims = defaultDims;
  if (body.dimensions !== undefined && body.dimensions !== null) {
    const d = body.dimensions;
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > 65536) {
      throw new MockRequestError(400, "'dimensions' must be an integer between 1 and 65536", null, 'dimensions');
    }
    dims = d;
  }
  const format = body.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') {
    throw new MockRequestError(400, "'encoding_format' must be 'float' or 'base64'", null, 'encoding_format');
  }
  let promptTokens = 0;
  const data = inputs.map((input, index) => {
    promptTokens += input.prompt.tokens;
    const v = embed(input.text, dims, seed);
    const embedding = format === 'base64' ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v);
    return { object: 'embedding', index, embedding };
  });
  return {
    promptTokens,
    completionTokens: 0,
    // A pooling request is prefill only, and the mock keeps it out of the prefix cache.
    work: inputs.map((input) => ({ prompt: input.prompt, outputs: [0] })),
    cacheField: null,
    payload: {
      id: `embd-${g.id}`,
      object: 'list',
      created: g.created,
      model,
      data,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens, completion_tokens: 0 },
    },
  };
}
