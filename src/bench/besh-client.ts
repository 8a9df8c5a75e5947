import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

import { postJson, requestJson } from './http.js';

export interface FileObject {
  id: string;
  bytes: number;
}

export interface BatchObject {
  id: string;
  status: string;
  request_counts: { total: number; completed: number; failed: number };
  in_progress_at: number | null;
  completed_at: number | null;
  errors: { data: { code?: string; message?: string }[] } | null;
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired']);
const LONG_MS = 30 * 60_000;

/**
 * POST /v1/files with a multipart body streamed from disk: head, the file's chunks, closing
 * boundary. The length is known up front, so the body is sent with a Content-Length.
 */
export async function uploadFile(baseUrl: string, path: string): Promise<FileObject> {
  const boundary = `----besh-bench-${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${basename(path)}"\r\n` +
      'Content-Type: application/jsonl\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const { size } = await stat(path);
  async function* parts(): AsyncGenerator<Buffer> {
    yield head;
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) yield chunk as Buffer;
    yield tail;
  }
  return requestJson<FileObject>(`${baseUrl}/v1/files`, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + size + tail.length) },
    body: Readable.from(parts(), { objectMode: false }),
    headersTimeout: LONG_MS,
    bodyTimeout: LONG_MS,
  });
}

export const createBatch = (baseUrl: string, inputFileId: string, completionWindow = '24h'): Promise<BatchObject> =>
  postJson<BatchObject>(`${baseUrl}/v1/batches`, { input_file_id: inputFileId, endpoint: '/v1/chat/completions', completion_window: completionWindow });

export const getBatch = (baseUrl: string, id: string): Promise<BatchObject> => requestJson<BatchObject>(`${baseUrl}/v1/batches/${id}`);

export interface WaitOptions {
  intervalMs: number;
  timeoutMs: number;
  /** Called with each poll's answer (progress output). */
  onPoll?: (b: BatchObject) => void;
}

/** Polls until the batch reaches a terminal status; returns it and when (performance.now()) that answer arrived. */
export async function waitForBatch(baseUrl: string, id: string, o: WaitOptions): Promise<{ batch: BatchObject; doneAt: number }> {
  const deadline = performance.now() + o.timeoutMs;
  for (;;) {
    const batch = await getBatch(baseUrl, id);
    const doneAt = performance.now();
    o.onPoll?.(batch);
    if (TERMINAL.has(batch.status)) return { batch, doneAt };
    if (doneAt > deadline) {
      const c = batch.request_counts;
      throw new Error(`batch ${id} still ${batch.status} after ${Math.round(o.timeoutMs / 1000)} s (${c.completed} completed, ${c.failed} failed of ${c.total})`);
    }
    await sleep(o.intervalMs);
  }
}
