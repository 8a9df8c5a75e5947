import { readFile } from 'node:fs/promises';

import { seededRandom as prng } from '../mock/hash.js';
import { writeLinesFile } from './input-file.js';

/**
 * Batch input files for the GPU-efficiency scenarios: chat requests that share long prompt
 * prefixes (a system prompt, or a document several questions are asked about), in a shuffled
 * order, and plain short chat requests. Deterministic: the same settings give the same bytes.
 */
export interface SharedPrefixWorkload {
  /** Distinct shared prefixes (system messages). */
  prefixes: number;
  /** Requests per prefix. */
  linesPerPrefix: number;
  /**
   * Tokens of each system message at the mock's 4 characters a token. With the 4-token role
   * header the mock renders before it, a multiple of 16 minus 4 makes the shared part whole
   * 16-token KV blocks.
   */
  prefixTokens: number;
  /** Tokens of each request's own user message (never shared). */
  userTokens: number;
  /** `max_tokens`; the mock then generates 1..max_tokens tokens, set by the body's hash (mean ≈ half). */
  maxTokens: number;
  seed: number;
}

const WORDS = ['data', 'field', 'record', 'label', 'review', 'policy', 'answer', 'format', 'value', 'rule', 'check', 'item', 'report', 'entry', 'source', 'note'];

/** `chars` characters of filler words, drawn from `rand`. */
function filler(chars: number, rand: () => number): string {
  let s = '';
  while (s.length < chars) s += `${WORDS[Math.floor(rand() * WORDS.length)]!} `;
  return s.slice(0, chars);
}

/** Input order: every (prefix, question) pair once, shuffled (Fisher–Yates). */
export function shuffledPairs(w: Pick<SharedPrefixWorkload, 'prefixes' | 'linesPerPrefix' | 'seed'>): Array<[number, number]> {
  const pairs: Array<[number, number]> = [];
  for (let p = 0; p < w.prefixes; p++) for (let q = 0; q < w.linesPerPrefix; q++) pairs.push([p, q]);
  const rand = prng(w.seed);
  for (let i = pairs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [pairs[i], pairs[j]] = [pairs[j]!, pairs[i]!];
  }
  return pairs;
}

/**
 * Writes the workload as a batch input file; returns its line count and bytes. The system
 * messages differ from their first characters (so each has its own prefix key and its own KV
 * blocks), the user messages all differ.
 */
export async function writeSharedPrefixFile(path: string, w: SharedPrefixWorkload): Promise<{ lines: number; bytes: number }> {
  const rand = prng(w.seed ^ 0x5eed);
  const systems: string[] = [];
  for (let p = 0; p < w.prefixes; p++) {
    const head = `You are assistant ${p} of the batch. Follow these instructions for every item. `;
    systems.push(head + filler(Math.max(0, w.prefixTokens * 4 - head.length), rand));
  }
  const pairs = shuffledPairs(w);
  function* lines(): Generator<string> {
    for (const [p, q] of pairs) {
      const head = `Item ${p}-${q}: `;
      const user = head + filler(Math.max(0, w.userTokens * 4 - head.length), rand);
      const body = { model: 'mock-model', messages: [{ role: 'system', content: systems[p] }, { role: 'user', content: user }], max_tokens: w.maxTokens };
      yield `${JSON.stringify({ custom_id: `p${p}-q${q}`, method: 'POST', url: '/v1/chat/completions', body })}\n`;
    }
  }
  return { lines: pairs.length, bytes: await writeLinesFile(path, lines()) };
}

/**
 * Short independent chat requests (no shared prefix: BESH does not regroup them), `maxTokens`
 * each with `ignore_eos` so every request costs the server the same. `tag` keeps two files'
 * custom_ids and bodies apart.
 */
export async function writeShortChatFile(path: string, count: number, o: { promptTokens: number; maxTokens: number; ignoreEos: boolean; tag: string }): Promise<number> {
  const rand = prng(count ^ 0xc0ffee);
  function* lines(): Generator<string> {
    for (let i = 0; i < count; i++) {
      const head = `${o.tag} question ${i}: `;
      const body = {
        model: 'mock-model',
        messages: [{ role: 'user', content: head + filler(Math.max(0, o.promptTokens * 4 - head.length), rand) }],
        max_tokens: o.maxTokens,
        ...(o.ignoreEos ? { ignore_eos: true } : {}),
      };
      yield `${JSON.stringify({ custom_id: `${o.tag}${i}`, method: 'POST', url: '/v1/chat/completions', body })}\n`;
    }
  }
  return writeLinesFile(path, lines());
}

/** The request bodies of an input file in its order, as BESH sends them (the body re-serialised). */
export async function readBodies(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8');
  const bodies: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    bodies.push(JSON.stringify((JSON.parse(line) as { body: unknown }).body));
  }
  return bodies;
}
