import { createInterface } from 'node:readline';

import { oneLine } from './format.js';
import type { BeshClient } from './http-client.js';

/** One line of an output or error file, as BESH (and OpenAI) write them. */
interface ResultLine {
  custom_id?: unknown;
  response?: { status_code?: unknown; body?: unknown } | null;
  error?: { code?: unknown; message?: unknown } | null;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | null => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const text = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v));

/** The first `n` lines of a file, read as a stream and closed as soon as they are in. */
export async function firstLines(client: BeshClient, fileId: string, n: number): Promise<string[]> {
  if (n <= 0) return [];
  const { body } = await client.openContent(fileId);
  const lines: string[] = [];
  const rl = createInterface({ input: body, crlfDelay: Infinity });
  try {
    for await (const line of rl) {
      if (line.trim() === '') continue;
      lines.push(line);
      if (lines.length >= n) break;
    }
  } finally {
    rl.close();
    body.destroy();
  }
  return lines;
}

/** "custom_id  → what came back": the assistant's text, the embedding size, or the error. */
export function summarizeLine(raw: string, max = 100): { customId: string; summary: string } {
  let line: ResultLine;
  try {
    line = JSON.parse(raw) as ResultLine;
  } catch {
    return { customId: '?', summary: `(not JSON) ${oneLine(raw, max)}` };
  }
  const customId = typeof line.custom_id === 'string' ? line.custom_id : '?';
  const err = obj(line.error);
  if (err) return { customId, summary: `error ${text(err.code)}: ${oneLine(text(err.message), max)}` };
  const status = typeof line.response?.status_code === 'number' ? line.response.status_code : null;
  const body = obj(line.response?.body);
  if (status !== null && status >= 400) {
    const message = obj(body?.error)?.message ?? JSON.stringify(line.response?.body ?? null);
    return { customId, summary: `HTTP ${status}: ${oneLine(text(message), max)}` };
  }
  return { customId, summary: body ? summarizeBody(body, max) : '(no response body)' };
}

function summarizeBody(body: Json, max: number): string {
  // Chat completions and completions.
  const choice = obj(arr(body.choices)[0]);
  if (choice) {
    const content = obj(choice.message)?.content ?? choice.text;
    if (typeof content === 'string') return JSON.stringify(oneLine(content, max));
    const calls = arr(obj(choice.message)?.tool_calls).length;
    if (calls > 0) return `(${calls} tool call${calls === 1 ? '' : 's'})`;
  }
  // Embeddings.
  if (body.object === 'list' && Array.isArray(body.data)) {
    const vectors = body.data.map((d) => obj(d)?.embedding).filter(Array.isArray);
    if (vectors.length > 0) return vectors.length === 1 ? `embedding of ${vectors[0]!.length} dimensions` : `${vectors.length} embeddings of ${vectors[0]!.length} dimensions`;
  }
  // Responses API.
  if (typeof body.output_text === 'string') return JSON.stringify(oneLine(body.output_text, max));
  for (const item of arr(body.output)) {
    for (const part of arr(obj(item)?.content)) {
      const text = obj(part)?.text;
      if (typeof text === 'string') return JSON.stringify(oneLine(text, max));
    }
  }
  return oneLine(JSON.stringify(body), max);
}
