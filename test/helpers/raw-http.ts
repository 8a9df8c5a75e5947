import { existsSync, readdirSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join, relative } from 'node:path';

import { expect } from 'vitest';

import type { BeshProcess } from './besh-process.js';

/** What a raw request got back: status, headers and the body parsed as JSON when it is JSON. */
export interface RawAnswer {
  status: number;
  headers: Headers;
  body: any;
  text: string;
}

/** fetch() without the SDK, for requests the SDK cannot express. `path` is relative to the host. */
export async function call(p: BeshProcess, path: string, init: RequestInit = {}): Promise<RawAnswer> {
  const r = await fetch(`${p.url}${path}`, init);
  const text = await r.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* keep the text so a failing assertion shows it */
  }
  return { status: r.status, headers: r.headers, body, text };
}

/** POST a JSON text (any text, not necessarily valid JSON) with a content type. */
export const postText = (p: BeshProcess, path: string, body: string, contentType = 'application/json'): Promise<RawAnswer> =>
  call(p, path, { method: 'POST', headers: contentType === '' ? {} : { 'content-type': contentType }, body });

/**
 * Expects OpenAI's error envelope, exactly its four keys, with this status and code, a message
 * matching `message`, and `param` when given. Also checks the JSON content type and request id.
 */
export function expectEnvelope(r: RawAnswer, status: number, code: string | null, message: RegExp, param?: string | null, label = ''): void {
  const where = `${label} → ${r.status} ${r.text.slice(0, 300)}`;
  expect(r.status, where).toBe(status);
  expect(r.headers.get('content-type'), where).toMatch(/^application\/json/);
  expect(r.headers.get('x-request-id'), where).toMatch(/^req_[0-9A-Za-z]+$/);
  expect(Object.keys(r.body ?? {}), where).toEqual(['error']);
  expect(Object.keys(r.body.error).sort(), where).toEqual(['code', 'message', 'param', 'type']);
  expect(r.body.error.type, where).toBe(status >= 500 ? 'server_error' : 'invalid_request_error');
  expect(r.body.error.code, where).toBe(code);
  expect(typeof r.body.error.message, where).toBe('string');
  expect(r.body.error.message, where).toMatch(message);
  if (param !== undefined) expect(r.body.error.param, where).toBe(param);
}

export interface Part {
  name: string;
  /** Sent as the part's body. */
  value: string | Buffer;
  /** Raw `filename="…"` text (may hold any byte but '"', CR and LF). */
  filename?: string;
  /** Replaces the whole Content-Disposition header value. */
  disposition?: string;
}

export const BOUNDARY = 'hostile-boundary-7d1c';

/** A multipart/form-data body built byte by byte, so it can say things FormData never would. */
export function multipart(parts: Part[], opts: { boundary?: string; close?: boolean } = {}): Buffer {
  const b = opts.boundary ?? BOUNDARY;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = p.disposition ?? `form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}`;
    chunks.push(Buffer.from(`--${b}\r\nContent-Disposition: ${disposition}\r\n`, 'latin1'));
    if (p.filename !== undefined || p.disposition !== undefined) chunks.push(Buffer.from('Content-Type: application/octet-stream\r\n'));
    chunks.push(Buffer.from('\r\n'), Buffer.isBuffer(p.value) ? p.value : Buffer.from(p.value), Buffer.from('\r\n'));
  }
  if (opts.close !== false) chunks.push(Buffer.from(`--${b}--\r\n`));
  return Buffer.concat(chunks);
}

/** POST /v1/files with a hand-made body. */
export const postMultipart = (p: BeshProcess, body: Buffer | string, contentType = `multipart/form-data; boundary=${BOUNDARY}`): Promise<RawAnswer> =>
  call(p, '/v1/files', { method: 'POST', headers: { 'content-type': contentType }, body });

/** The usual upload: `purpose=batch` and `file` with this name and content. */
export const uploadParts = (content: string | Buffer, filename = 'input.jsonl', purpose: string | null = 'batch'): Part[] => [
  ...(purpose === null ? [] : [{ name: 'purpose', value: purpose }]),
  { name: 'file', value: content, filename },
];

/** Every file under `dir`, relative, sorted (directories themselves are not listed). */
export function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const visit = (d: string): void => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) visit(full);
      else out.push(relative(dir, full));
    }
  };
  visit(dir);
  return out.sort();
}

/** Blobs and temp files: everything under the data dir except the SQLite database. */
export const blobFiles = (p: BeshProcess): string[] => walk(p.dataDir).filter((f) => !/^besh\.sqlite(-wal|-shm|-journal)?$/.test(f));

/** Leftover partial uploads. */
export const tmpFiles = (p: BeshProcess): string[] => walk(join(p.dataDir, 'tmp'));

/**
 * The server still serves: the process is alive, /health answers 200 healthy and a list call
 * answers a list envelope.
 */
export async function expectServing(p: BeshProcess): Promise<void> {
  expect(p.child.exitCode, p.output()).toBeNull();
  expect(p.child.signalCode, p.output()).toBeNull();
  const h = await call(p, '/health');
  expect(h.status, h.text).toBe(200);
  expect(h.body.status).toBe('healthy');
  const files = await call(p, '/v1/files?limit=1');
  expect(files.status, files.text).toBe(200);
  expect(files.body.object).toBe('list');
  const batches = await call(p, '/v1/batches?limit=1');
  expect(batches.status, batches.text).toBe(200);
  expect(batches.body.object).toBe('list');
  // No 500 was answered and nothing went unhandled, ever, on this server.
  expect(p.output()).not.toMatch(/unhandled error|request failed|uncaught|FATAL/i);
}

export interface SocketExchange {
  /** Bytes of the body written before the first byte of the answer arrived (or the socket closed). */
  sentBeforeAnswer: number;
  /** Bytes of the body the client meant to send. */
  bodyBytes: number;
  /** The raw answer (head and body) as text; '' if none came. */
  answer: string;
  status: number | null;
  json: any;
}

/**
 * Sends `head` then `chunk` `count` times over a raw socket, one chunk every `intervalMs`, then
 * `tail`, with an honest Content-Length; stops writing as soon as an answer starts. Resolves with
 * what came back once the answer is complete (or the socket closed, or `timeoutMs` passed).
 */
export function slowPost(
  port: number,
  path: string,
  contentType: string,
  body: { head: Buffer; chunk: Buffer; count: number; tail: Buffer },
  opts: { intervalMs?: number; timeoutMs?: number } = {},
): Promise<SocketExchange> {
  const total = body.head.length + body.chunk.length * body.count + body.tail.length;
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let sent = 0;
    let sentBeforeAnswer = -1;
    let answer = Buffer.alloc(0);
    const done = (): void => {
      clearInterval(timer);
      clearTimeout(deadline);
      sock.destroy();
      const text = answer.toString('utf8');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      const sep = text.indexOf('\r\n\r\n');
      let json: any = null;
      try {
        json = sep === -1 ? null : JSON.parse(text.slice(sep + 4));
      } catch {
        json = null;
      }
      resolve({ sentBeforeAnswer: sentBeforeAnswer === -1 ? sent : sentBeforeAnswer, bodyBytes: total, answer: text, status: m ? Number(m[1]) : null, json });
    };
    const deadline = setTimeout(done, opts.timeoutMs ?? 15_000);
    sock.on('data', (d: Buffer) => {
      if (sentBeforeAnswer === -1) sentBeforeAnswer = sent;
      clearInterval(timer);
      answer = Buffer.concat([answer, d]);
      const text = answer.toString('latin1');
      const sep = text.indexOf('\r\n\r\n');
      const len = /\r\ncontent-length: (\d+)/i.exec(text);
      if (sep !== -1 && len && answer.length >= sep + 4 + Number(len[1])) done();
    });
    sock.on('close', done);
    sock.on('error', (err) => {
      if (sentBeforeAnswer === -1 && answer.length === 0 && sent === 0) reject(err);
    });
    sock.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${contentType}\r\nContent-Length: ${total}\r\n\r\n`);
    sock.write(body.head);
    sent += body.head.length;
    let i = 0;
    const timer = setInterval(() => {
      if (sock.destroyed || sentBeforeAnswer !== -1) return;
      if (i < body.count) {
        i++;
        sent += body.chunk.length;
        sock.write(body.chunk);
      } else {
        clearInterval(timer);
        sent += body.tail.length;
        sock.write(body.tail);
      }
    }, opts.intervalMs ?? 5);
  });
}

/**
 * Starts an upload over a raw socket announcing `announced` bytes, writes `sendFirst`, waits
 * `waitMs` (optionally checking something while the upload is open), then destroys the socket.
 */
export function cutOffUpload(
  port: number,
  contentType: string,
  announced: number,
  sendFirst: Buffer,
  waitMs: number,
  whileOpen?: () => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => {
      sock.write(`POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${contentType}\r\nContent-Length: ${announced}\r\n\r\n`);
      sock.write(sendFirst);
      setTimeout(() => {
        try {
          whileOpen?.();
        } catch (err) {
          sock.destroy();
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        sock.destroy();
        resolve();
      }, waitMs);
    });
    sock.on('error', reject);
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true or `timeoutMs` passes; returns its last result. */
export async function eventually(check: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
}

/**
 * Over one keep-alive connection: sends the request line and headers (with an honest
 * Content-Length), `body.head`, then `body.chunk` `count` times every `intervalMs` whatever the
 * server answers meanwhile, then `body.tail`, and 300 ms later a second request `next`. Resolves
 * with the status lines of the answers received within `timeoutMs` (two when the connection
 * stayed usable).
 */
export function twoRequestsOneConnection(
  port: number,
  first: { path: string; contentType: string; head: Buffer; chunk: Buffer; count: number; tail: Buffer; intervalMs: number },
  next: string,
  timeoutMs = 5000,
): Promise<string[]> {
  const total = first.head.length + first.chunk.length * first.count + first.tail.length;
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let text = '';
    // Answers are concatenated without a separator: find status lines anywhere.
    const statuses = (): string[] => [...text.matchAll(/HTTP\/1\.1 \d{3}[^\r]*/g)].map((m) => m[0]);
    const finish = (): void => {
      clearTimeout(deadline);
      clearInterval(timer);
      sock.destroy();
      resolve(statuses());
    };
    const deadline = setTimeout(finish, timeoutMs);
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (statuses().length >= 2 && /\}\s*$/.test(text)) finish();
    });
    sock.on('close', finish);
    sock.on('error', (err) => {
      if (text === '') reject(err);
    });
    sock.write(`POST ${first.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${first.contentType}\r\nContent-Length: ${total}\r\n\r\n`);
    sock.write(first.head);
    let i = 0;
    const timer = setInterval(() => {
      if (i < first.count) {
        i++;
        sock.write(first.chunk);
        return;
      }
      clearInterval(timer);
      sock.write(first.tail);
      setTimeout(() => sock.write(next), 300);
    }, first.intervalMs);
  });
}
