import { createHash } from 'node:crypto';

import type OpenAI from 'openai';
import { toFile } from 'openai';

import type { BeshProcess } from '../helpers/besh-process.js';

export type Upload = Awaited<ReturnType<OpenAI['uploads']['create']>>;

export const md5 = (b: Buffer | string): string => createHash('md5').update(b).digest('hex');

/** `buf` cut at the given byte offsets (anywhere, mid-line too). */
export function cut(buf: Buffer, offsets: number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const o of [...offsets, buf.length]) {
    out.push(buf.subarray(from, o));
    from = o;
  }
  return out;
}

export async function createUpload(client: OpenAI, bytes: number, filename = 'big.jsonl', extra: Record<string, unknown> = {}): Promise<Upload> {
  return client.uploads.create({ bytes, filename, mime_type: 'application/jsonl', purpose: 'batch', ...extra });
}

export async function addPart(client: OpenAI, uploadId: string, data: Buffer): Promise<string> {
  const part = await client.uploads.parts.create(uploadId, { data: await toFile(data, 'part') });
  return part.id;
}

/** Create, one part per buffer (in order), complete with the ids in that order and the md5. */
export async function uploadInParts(client: OpenAI, parts: Buffer[], filename = 'big.jsonl'): Promise<Upload> {
  const all = Buffer.concat(parts);
  const u = await createUpload(client, all.length, filename);
  const ids: string[] = [];
  for (const p of parts) ids.push(await addPart(client, u.id, p));
  return client.uploads.complete(u.id, { part_ids: ids, md5: md5(all) });
}

/** A raw JSON answer (status, envelope) for what the SDK hides. */
export async function raw(besh: BeshProcess, path: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: any }> {
  const r = await fetch(`${besh.baseURL}${path}`, init);
  const text = await r.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* keep the text */
  }
  return { status: r.status, headers: r.headers, body };
}

export const postJson = (besh: BeshProcess, path: string, body: unknown): ReturnType<typeof raw> =>
  raw(besh, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** A multipart part upload by hand (field `data`). */
export function postPart(besh: BeshProcess, uploadId: string, data: Buffer, field = 'data'): ReturnType<typeof raw> {
  const form = new FormData();
  form.append(field, new Blob([data]), 'part');
  return raw(besh, `/uploads/${uploadId}/parts`, { method: 'POST', body: form });
}

export async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000, what = 'the condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One request line of exactly `bytes` bytes (newline included). */
export function lineOfBytes(bytes: number, id = 'x'): string {
  const head = `{"custom_id":"${id}","pad":"`;
  const tail = '"}\n';
  return `${head}${'a'.repeat(bytes - head.length - tail.length)}${tail}`;
}
