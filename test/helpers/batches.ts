import { gzipSync } from 'node:zlib';

import type OpenAI from 'openai';
import { toFile } from 'openai';

type Batch = Awaited<ReturnType<OpenAI['batches']['retrieve']>>;

export interface LineOpts {
  url?: string;
  model?: string;
  /** Text placed in the request so the mock can be told to fail or hang on it. */
  marker?: (i: number) => string | undefined;
  prefix?: string;
}

/** n chat-completion request lines (custom ids `${prefix}-${i}`), as JSONL text. */
export function chatLines(n: number, o: LineOpts = {}): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const content = `question ${i}${o.marker?.(i) ? ` ${o.marker(i)}` : ''}`;
    out.push(
      JSON.stringify({
        custom_id: `${o.prefix ?? 'req'}-${i}`,
        method: 'POST',
        url: o.url ?? '/v1/chat/completions',
        body: { model: o.model ?? 'mock-model', messages: [{ role: 'user', content }], max_tokens: 16 },
      }),
    );
  }
  return `${out.join('\n')}\n`;
}

export async function upload(client: OpenAI, jsonl: string | Buffer, name = 'input.jsonl', gzip = false): Promise<string> {
  const data = gzip ? gzipSync(jsonl) : Buffer.from(jsonl);
  const f = await client.files.create({ file: await toFile(data, gzip ? `${name}.gz` : name), purpose: 'batch' });
  return f.id;
}

const TERMINAL = new Set(['completed', 'failed', 'expired', 'cancelled']);

export async function waitFor(client: OpenAI, id: string, pred: (b: Batch) => boolean, timeoutMs = 60_000): Promise<Batch> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const b = await client.batches.retrieve(id);
    if (pred(b)) return b;
    if (Date.now() > deadline) throw new Error(`timed out waiting for batch ${id}; last: ${JSON.stringify(b)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const waitDone = (client: OpenAI, id: string, timeoutMs?: number): Promise<Batch> => waitFor(client, id, (b) => TERMINAL.has(b.status), timeoutMs);

export async function readJsonl(client: OpenAI, fileId: string | null | undefined): Promise<Array<Record<string, any>>> {
  if (!fileId) return [];
  const text = await (await client.files.content(fileId)).text();
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, any>);
}
