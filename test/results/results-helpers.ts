import { expect } from 'vitest';

/** One answer of `GET /v1/batches/{id}/results`. */
export interface ResultsAnswer {
  status: number;
  text: string;
  cursor: string | null;
  complete: boolean;
  batchStatus: string | null;
  headers: Headers;
  body: any;
}

export async function getResults(baseURL: string, batchId: string, q: Record<string, string | undefined> = {}, init: { key?: string; headers?: Record<string, string> } = {}): Promise<ResultsAnswer> {
  const url = new URL(`${baseURL}/batches/${encodeURIComponent(batchId)}/results`);
  for (const [k, v] of Object.entries(q)) if (v !== undefined) url.searchParams.set(k, v);
  const headers: Record<string, string> = { ...init.headers };
  if (init.key) headers.authorization = `Bearer ${init.key}`;
  const res = await fetch(url, { headers });
  const text = await res.text();
  let body: any = null;
  if (res.status >= 400) body = JSON.parse(text);
  return {
    status: res.status,
    text,
    cursor: res.headers.get('x-besh-cursor'),
    complete: res.headers.get('x-besh-results-complete') === 'true',
    batchStatus: res.headers.get('x-besh-batch-status'),
    headers: res.headers,
    body,
  };
}

export interface Followed {
  /** Every page's text, in order. */
  pages: string[];
  /** After each page: its cursor, the batch status it reported, and how many lines had been read up to it. */
  marks: Array<{ cursor: string; status: string; linesSoFar: number }>;
}

/** Follows the results with the cursor until they are complete, checking every page as it comes. */
export async function follow(baseURL: string, batchId: string, opts: { kind?: string; intervalMs?: number; timeoutMs?: number; key?: string } = {}): Promise<Followed> {
  const out: Followed = { pages: [], marks: [] };
  let cursor: string | undefined;
  let lines = 0;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    const r = await getResults(baseURL, batchId, { after: cursor, kind: opts.kind }, { key: opts.key });
    expect(r.status, r.text.slice(0, 300)).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/jsonl/);
    expect(Number(r.headers.get('content-length'))).toBe(Buffer.byteLength(r.text));
    expect(r.cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    // Whole lines only: a page never ends inside a line.
    if (r.text !== '') expect(r.text.endsWith('\n')).toBe(true);
    out.pages.push(r.text);
    lines += splitLines(r.text).length;
    out.marks.push({ cursor: r.cursor!, status: r.batchStatus!, linesSoFar: lines });
    cursor = r.cursor!;
    if (r.complete) return out;
    if (Date.now() > deadline) throw new Error(`results of ${batchId} not complete in time (${lines} lines read)`);
    await new Promise((res) => setTimeout(res, opts.intervalMs ?? 50));
  }
}

export const splitLines = (text: string): string[] => text.split('\n').filter((l) => l !== '');

/** The lines of a multiset, sorted (lines are compared byte for byte). */
export const sorted = (lines: readonly string[]): string[] => [...lines].sort();

/** `all` minus `some`, as multisets (every line of `some` must be in `all`). */
export function minus(all: readonly string[], some: readonly string[]): string[] {
  const counts = new Map<string, number>();
  for (const l of some) counts.set(l, (counts.get(l) ?? 0) + 1);
  const out: string[] = [];
  for (const l of all) {
    const n = counts.get(l) ?? 0;
    if (n > 0) counts.set(l, n - 1);
    else out.push(l);
  }
  expect([...counts.values()].every((n) => n === 0), 'lines read that are not in the files').toBe(true);
  return out;
}

/** The raw text of a file's content. */
export async function fileText(baseURL: string, fileId: string | null | undefined, key?: string): Promise<string> {
  if (!fileId) return '';
  const res = await fetch(`${baseURL}/files/${fileId}/content`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  expect(res.status).toBe(200);
  return res.text();
}

export const customIdOf = (line: string): string => (JSON.parse(line) as { custom_id: string }).custom_id;

/** The blobs under `prefix` once they are `expected` (segments are removed just after the terminal write), or the last listing. */
export async function blobsSettled(list: (prefix: string) => Promise<string[]>, prefix: string, expected: string[], ms = 10_000): Promise<string[]> {
  let blobs: string[] = [];
  for (const until = Date.now() + ms; ; await new Promise((r) => setTimeout(r, 100))) {
    blobs = (await list(prefix)).sort();
    if (blobs.join() === [...expected].sort().join() || Date.now() > until) return blobs;
  }
}
