import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';

import type { Connection } from './connection.js';
import { ApiError, apiError, CliError, networkReason, unreachable, UsageError } from './errors.js';
import type { FileObject } from './types.js';

/** `GET /v1/uploads/limits` (BESH only): what the server takes in one request and in parts. */
export interface UploadLimits {
  max_file_bytes: number;
  max_upload_bytes: number;
  max_part_bytes: number;
}

export interface PartsOptions {
  /** Bytes per part (the last one may be shorter); at most the server's part limit. */
  partSize: number;
  /** Parts in flight at once; they are listed in file order at completion whatever order they land in. */
  parallel: number;
  /** Bytes handed to the network (negative when a failed part is sent again). */
  onBytes: (n: number) => void;
}

interface UploadObject {
  id: string;
  status: string;
  file: FileObject | null;
}

/** 64 MiB: OpenAI's largest part, and the default. */
export const DEFAULT_PART_SIZE = 64 * 1024 * 1024;
/** Files above this go through the Uploads API by default. */
export const DEFAULT_PARTS_ABOVE = 256 * 1024 * 1024;
export const DEFAULT_PARALLEL_PARTS = 3;
const ATTEMPTS = 3;

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/** `268435456`, `256M`, `256MiB`, `1G` (binary units) → bytes; a UsageError naming the option otherwise. */
export function parseSize(text: string, option: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  const n = m && unit !== undefined ? Math.round(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`Invalid ${option} '${text}': expected a size such as 268435456, 256M or 1G.`);
  return n;
}

/** The server's limits, or null when it does not say (an older BESH, or another server). */
export async function fetchUploadLimits(conn: Connection): Promise<UploadLimits | null> {
  try {
    const res = await send(conn, 'GET', '/uploads/limits');
    const body = (await res.json()) as Partial<UploadLimits>;
    return typeof body.max_file_bytes === 'number' && typeof body.max_part_bytes === 'number' && typeof body.max_upload_bytes === 'number'
      ? (body as UploadLimits)
      : null;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

/**
 * Uploads a file through the Uploads API: create, the parts (streamed from disk, `parallel` at a
 * time, each retried on a network error or a 5xx), then complete with the part ids in file order
 * and the file's MD5 (read alongside, so a part that went wrong is caught by the server). On a
 * failure the upload is cancelled, so its parts do not wait an hour to be removed.
 */
export async function uploadInParts(conn: Connection, path: string, size: number, opts: PartsOptions): Promise<{ file: FileObject; uploadId: string; parts: number }> {
  const name = basename(path).replace(/\.gz$/i, '');
  const upload = await json<UploadObject>(conn, 'POST', '/uploads', {
    filename: name,
    purpose: 'batch',
    bytes: size,
    mime_type: /\.gz$/i.test(path) ? 'application/gzip' : 'application/jsonl',
  });
  try {
    const md5 = md5Of(path);
    const count = Math.max(1, Math.ceil(size / opts.partSize));
    const ids: string[] = new Array<string>(count);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const i = next++;
        const start = i * opts.partSize;
        const end = Math.min(size, start + opts.partSize);
        ids[i] = await withRetries(() => sendPart(conn, upload.id, path, start, end, opts.onBytes));
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.parallel, count) }, worker));
    const done = await json<UploadObject>(conn, 'POST', `/uploads/${encodeURIComponent(upload.id)}/complete`, { part_ids: ids, md5: await md5 });
    if (done.file === null) throw new CliError(`Upload ${upload.id} completed without a file (status ${done.status}).`);
    return { file: done.file, uploadId: upload.id, parts: count };
  } catch (err) {
    await send(conn, 'POST', `/uploads/${encodeURIComponent(upload.id)}/cancel`).catch(() => undefined);
    throw err;
  }
}

/** One part as a hand-built multipart body (field `data`), streamed from the file's byte range. */
async function sendPart(conn: Connection, uploadId: string, path: string, start: number, end: number, onBytes: (n: number) => void): Promise<string> {
  const boundary = `----besh-${randomBytes(12).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="data"; filename="part"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  let sent = 0;
  async function* body(): AsyncGenerator<Buffer> {
    yield head;
    for await (const chunk of createReadStream(path, { start, end: end - 1, highWaterMark: 256 * 1024 })) {
      sent += (chunk as Buffer).length;
      onBytes((chunk as Buffer).length);
      yield chunk as Buffer;
    }
    yield tail;
  }
  try {
    const res = await send(conn, 'POST', `/uploads/${encodeURIComponent(uploadId)}/parts`, {
      body: body(),
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + (end - start) + tail.length) },
    });
    return ((await res.json()) as { id: string }).id;
  } catch (err) {
    onBytes(-sent); // sent again on a retry
    throw err;
  }
}

/** Retries what a second try may fix: the network, and 5xx answers. */
async function withRetries<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const transient = err instanceof ApiError ? err.status >= 500 : !(err instanceof CliError) || /Cannot reach BESH/.test(err.message);
      if (!transient || attempt >= ATTEMPTS) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

async function md5Of(path: string): Promise<string> {
  const h = createHash('md5');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function json<T>(conn: Connection, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const res = await send(conn, method, path, body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  const text = await res.text();
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new CliError(`${conn.baseUrl} answered ${method} ${path} with something that is not JSON: ${text.slice(0, 120)}`);
  }
}

async function send(
  conn: Connection,
  method: 'GET' | 'POST',
  path: string,
  opts: { body?: string | AsyncIterable<Uint8Array>; headers?: Record<string, string> } = {},
): Promise<Response> {
  const url = `${conn.baseUrl}${path}`;
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'besh-cli', ...opts.headers };
  if (conn.apiKey) headers.authorization = `Bearer ${conn.apiKey}`;
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body: opts.body, ...(typeof opts.body === 'object' ? { duplex: 'half' } : {}) });
  } catch (err) {
    if (networkReason(err)) throw unreachable(conn.baseUrl, err);
    const cause = (err as { cause?: unknown }).cause;
    throw new CliError(`${method} ${url} failed: ${cause instanceof Error ? cause.message : (err as Error).message}`);
  }
  if (res.status >= 400) {
    const text = await res.text().catch(() => '');
    throw apiError(res.status, text, { method, path: new URL(url).pathname, baseUrl: conn.baseUrl });
  }
  return res;
}
