import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';

import type { ApiKeyObject } from '../../domain/index.js';
import type { Connection } from './connection.js';
import { apiError, CliError, networkReason, type RequestSubject, unreachable } from './errors.js';
import type { Batch, Deleted, FileObject, ListPage, ProjectView } from './types.js';

type Method = 'GET' | 'POST' | 'DELETE';

interface SendOptions {
  query?: Record<string, string | number | undefined>;
  json?: unknown;
  body?: AsyncIterable<Uint8Array>;
  headers?: Record<string, string>;
  subject?: RequestSubject;
}

export interface CreateBatchParams {
  input_file_id: string;
  endpoint: string;
  completion_window: string;
  metadata?: Record<string, string>;
}

/**
 * The BESH HTTP API as the CLI uses it, over Node's global fetch (undici inside; importing the
 * undici package itself would add ~150 ms to every command's start). Every failure becomes a
 * CliError whose message is meant for the user (unreachable server, 404, 401, the server's
 * error.message).
 */
export class BeshClient {
  constructor(readonly conn: Connection) {}

  get baseUrl(): string {
    return this.conn.baseUrl;
  }

  getBatch(id: string): Promise<Batch> {
    return this.#json('GET', `/batches/${encodeURIComponent(id)}`, { subject: { kind: 'batch', id } });
  }

  createBatch(params: CreateBatchParams): Promise<Batch> {
    return this.#json('POST', '/batches', { json: params });
  }

  cancelBatch(id: string): Promise<Batch> {
    return this.#json('POST', `/batches/${encodeURIComponent(id)}/cancel`, { subject: { kind: 'batch', id } });
  }

  deleteBatch(id: string): Promise<Deleted> {
    return this.#json('DELETE', `/batches/${encodeURIComponent(id)}`, { subject: { kind: 'batch', id } });
  }

  getFile(id: string): Promise<FileObject> {
    return this.#json('GET', `/files/${encodeURIComponent(id)}`, { subject: { kind: 'file', id } });
  }

  deleteFile(id: string): Promise<Deleted> {
    return this.#json('DELETE', `/files/${encodeURIComponent(id)}`, { subject: { kind: 'file', id } });
  }

  // Admin key routes (besh keys / besh projects with --base-url).
  listKeys(): Promise<{ data: ApiKeyObject[] }> {
    return this.#json('GET', '/keys');
  }

  createKey(params: { project: string; admin: boolean; name: string | null }): Promise<ApiKeyObject & { key: string }> {
    return this.#json('POST', '/keys', { json: params });
  }

  revokeKey(id: string): Promise<{ id: string; revoked: boolean }> {
    return this.#json('DELETE', `/keys/${encodeURIComponent(id)}`);
  }

  listProjects(): Promise<{ data: ProjectView[] }> {
    return this.#json('GET', '/projects');
  }

  setProjectLimits(name: string, limits: Record<string, number | null>): Promise<ProjectView> {
    return this.#json('POST', `/projects/${encodeURIComponent(name)}/limits`, { json: limits });
  }

  listBatches(): AsyncGenerator<Batch> {
    return this.#paginate<Batch>('/batches', { limit: 100 });
  }

  listFiles(purpose?: string): AsyncGenerator<FileObject> {
    return this.#paginate<FileObject>('/files', { limit: 1000, purpose });
  }

  /**
   * Uploads a .jsonl or .jsonl.gz file with purpose "batch", streamed from disk as a hand-built
   * multipart body (so its length is known and every byte can be counted as it is handed on).
   */
  async uploadFile(path: string, onBytes: (n: number) => void): Promise<FileObject> {
    const boundary = `----besh-${randomBytes(12).toString('hex')}`;
    const name = basename(path).replace(/["\r\n\\]/g, '_');
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const size = (await stat(path)).size;
    async function* parts(): AsyncGenerator<Buffer> {
      yield head;
      for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) {
        onBytes((chunk as Buffer).length);
        yield chunk as Buffer;
      }
      yield tail;
    }
    return this.#json('POST', '/files', {
      body: parts(),
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + size + tail.length) },
    });
  }

  /** The content of a file as a stream, with its length when the server sent one. */
  async openContent(id: string): Promise<{ size: number | null; body: Readable }> {
    const res = await this.#send('GET', `/files/${encodeURIComponent(id)}/content`, { subject: { kind: 'file', id } });
    const header = res.headers.get('content-length');
    const len = header === null ? NaN : Number(header);
    const body = res.body ? Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>) : Readable.from([]);
    return { size: Number.isFinite(len) && len >= 0 ? len : null, body };
  }

  async *#paginate<T extends { id: string }>(path: string, query: Record<string, string | number | undefined>): AsyncGenerator<T> {
    let after: string | undefined;
    for (;;) {
      const page = await this.#json<ListPage<T>>('GET', path, { query: { ...query, after } });
      for (const item of page.data) yield item;
      const last = page.data[page.data.length - 1];
      if (!page.has_more || !last) return;
      after = last.id;
    }
  }

  async #json<T>(method: Method, path: string, opts: SendOptions = {}): Promise<T> {
    const res = await this.#send(method, path, opts);
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`${this.baseUrl} answered ${method} ${path} with something that is not JSON: ${text.slice(0, 120)}`);
    }
  }

  async #send(method: Method, path: string, opts: SendOptions): Promise<Response> {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'besh-cli', ...opts.headers };
    if (this.conn.apiKey) headers.authorization = `Bearer ${this.conn.apiKey}`;
    let body: string | AsyncIterable<Uint8Array> | undefined = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['content-type'] = 'application/json';
    }
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body, ...(opts.body ? { duplex: 'half' } : {}) });
    } catch (err) {
      if (networkReason(err)) throw unreachable(this.baseUrl, err);
      const cause = (err as { cause?: unknown }).cause;
      if (cause instanceof Error && cause.message === 'bad port') {
        throw new CliError(`Cannot reach BESH at ${this.baseUrl}: port ${url.port} is one fetch refuses to use (a "bad port"); serve BESH on another port.`);
      }
      throw new CliError(`${method} ${url.href} failed: ${cause instanceof Error ? cause.message : (err as Error).message}`);
    }
    if (res.status >= 400) {
      const text = await res.text().catch(() => '');
      throw apiError(res.status, text, { method, path: url.pathname, baseUrl: this.baseUrl, subject: opts.subject });
    }
    return res;
  }
}
