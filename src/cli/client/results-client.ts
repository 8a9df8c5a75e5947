import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';

import { ApiError, apiError, CliError, networkReason, unreachable } from './errors.js';
import type { BeshClient } from './http-client.js';

/** One page of `GET /v1/batches/{id}/results` (docs/results.md). */
export interface ResultsPage {
  /** Where the next page starts (`--after`). */
  cursor: string;
  /** The batch has ended and this page holds its last lines: nothing more will come. */
  complete: boolean;
  status: string;
  /** Content-Length: the page's exact size. */
  bytes: number | null;
  body: Readable;
}

export type ResultsKind = 'all' | 'output' | 'error';

/** Error codes of the results route that are about the custom_id, not the batch. */
const LOOKUP_CODES = new Set(['custom_id_not_found', 'result_not_ready', 'custom_id_index_unavailable']);

export async function fetchResults(client: BeshClient, batchId: string, q: { after?: string | undefined; kind?: ResultsKind | undefined }): Promise<ResultsPage> {
  const res = await get(client, batchId, { after: q.after, kind: q.kind === 'all' ? undefined : q.kind });
  const cursor = res.headers.get('x-besh-cursor');
  if (cursor === null) throw new CliError(`${client.baseUrl} answered GET /batches/${batchId}/results without a cursor: is it a BESH that serves results while a batch runs?`);
  const len = Number(res.headers.get('content-length') ?? NaN);
  return {
    cursor,
    complete: res.headers.get('x-besh-results-complete') === 'true',
    status: res.headers.get('x-besh-batch-status') ?? '',
    bytes: Number.isFinite(len) ? len : null,
    body: res.body ? Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>) : Readable.from([]),
  };
}

/** One request's result line, or the ApiError saying why not (`result_not_ready`, `custom_id_not_found`). */
export async function fetchResultLine(client: BeshClient, batchId: string, customId: string): Promise<{ line: string; kind: string }> {
  const res = await get(client, batchId, { custom_id: customId });
  return { line: await res.text(), kind: res.headers.get('x-besh-result-kind') ?? '' };
}

async function get(client: BeshClient, batchId: string, query: Record<string, string | undefined>): Promise<Response> {
  const path = `/batches/${encodeURIComponent(batchId)}/results`;
  const url = new URL(`${client.baseUrl}${path}`);
  for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
  const headers: Record<string, string> = { accept: 'application/jsonl', 'user-agent': 'besh-cli' };
  if (client.conn.apiKey) headers.authorization = `Bearer ${client.conn.apiKey}`;
  let res: Response;
  try {
    res = await fetch(url, { headers });
  } catch (err) {
    if (networkReason(err)) throw unreachable(client.baseUrl, err);
    throw new CliError(`GET ${url.href} failed: ${(err as Error).message}`);
  }
  if (res.status >= 400) {
    const text = await res.text().catch(() => '');
    const e = apiError(res.status, text, { method: 'GET', path: url.pathname, baseUrl: client.baseUrl });
    if (res.status === 404 && e.code !== null && LOOKUP_CODES.has(e.code)) throw new ApiError(messageOf(text) ?? e.message, 404, e.code);
    if (res.status === 404 && e.code === 'batch_not_found') throw new ApiError(`No batch found with id ${batchId}`, 404, e.code);
    throw e;
  }
  return res;
}

function messageOf(text: string): string | null {
  try {
    const m = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    return typeof m === 'string' ? m : null;
  } catch {
    return null;
  }
}
