import OpenAI from 'openai';
import { expect } from 'vitest';

import { type ApiKeyObject, newBatchId, newFileId } from '../../src/domain/index.js';
import { type CliResult, runCli } from '../cli/run-cli.js';
import { type BeshProcess, storeArgs } from './besh-process.js';
import type { RawAnswer } from './raw-http.js';

/** What `besh keys create --json` prints: the key's public fields and, once, its secret (`besh-sk-…`). */
export type CreatedKey = ApiKeyObject & { key: string };

/** `besh keys create --project P --data-dir DIR --json` on the built binary. */
export async function createKey(dataDir: string, project: string, opts: { admin?: boolean; name?: string } = {}): Promise<CreatedKey> {
  const store = await storeArgs(dataDir);
  const args = ['keys', 'create', '--project', project, ...store.args, '--json'];
  if (opts.admin) args.push('--admin');
  if (opts.name !== undefined) args.push('--name', opts.name);
  const r = await runCli(args, store.env);
  expect(r.code, `keys create: ${r.stderr}`).toBe(0);
  const key = JSON.parse(r.stdout) as CreatedKey;
  expect(key.key).toMatch(/^besh-sk-[0-9A-Za-z]{40}$/);
  return key;
}

/** `besh keys revoke ID --data-dir DIR`. */
export async function revokeKey(dataDir: string, id: string): Promise<CliResult> {
  const store = await storeArgs(dataDir);
  return runCli(['keys', 'revoke', id, ...store.args, '--json'], store.env);
}

/** `besh keys list --json`. */
export async function listKeys(dataDir: string): Promise<Array<Record<string, unknown>>> {
  const store = await storeArgs(dataDir);
  const r = await runCli(['keys', 'list', ...store.args, '--json'], store.env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

/** `besh projects …args --data-dir DIR`. */
export async function projectsCli(dataDir: string, ...args: string[]): Promise<CliResult> {
  const store = await storeArgs(dataDir);
  return runCli(['projects', ...args, ...store.args], store.env);
}

/** An SDK client for one key (no retries unless asked; `project` sends `OpenAI-Project`). */
export function keyClient(besh: BeshProcess, apiKey: string, opts: { project?: string; maxRetries?: number; fetch?: typeof fetch } = {}): OpenAI {
  return new OpenAI({ baseURL: besh.baseURL, apiKey, maxRetries: opts.maxRetries ?? 0, timeout: 30_000, project: opts.project ?? null, fetch: opts.fetch });
}

/**
 * A fetch that counts the HTTP requests it sends (to prove an SDK did not retry) and notes how
 * each ended. `data:` URLs are not requests (the SDK probes one to check FormData support).
 */
export function countingFetch(): { fetch: typeof fetch; count(): number; log: string[] } {
  const log: string[] = [];
  return {
    fetch: async (input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      if (url.startsWith('data:')) return fetch(input, init);
      const line = `${init?.method ?? 'GET'} ${url}`;
      try {
        const r = await fetch(input, init);
        log.push(`${line} → ${r.status} x-should-retry=${r.headers.get('x-should-retry')}`);
        return r;
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        log.push(`${line} threw ${(err as Error).message} (${cause?.code ?? cause?.message ?? 'no cause'})`);
        throw err;
      }
    },
    count: () => log.length,
    log,
  };
}

export interface ApiInit {
  /** Sent as `Authorization: Bearer <key>`; omitted when undefined. */
  key?: string | undefined;
  method?: string;
  json?: unknown;
  body?: RequestInit['body'];
  headers?: Record<string, string>;
}

/** A raw request to BESH with an optional key; the answer's body parsed as JSON when it is JSON. */
export async function api(besh: BeshProcess, path: string, init: ApiInit = {}): Promise<RawAnswer> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.key !== undefined) headers.authorization = `Bearer ${init.key}`;
  let body = init.body;
  if (init.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(init.json);
  }
  const r = await fetch(`${besh.url}${path}`, { method: init.method ?? (body === undefined ? 'GET' : 'POST'), headers, body });
  const text = await r.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* keep the text so a failing assertion shows it */
  }
  return { status: r.status, headers: r.headers, body: parsed, text };
}

/** A multipart upload body (`purpose=batch`, `file`) as FormData. */
export function uploadForm(content: string, filename = 'input.jsonl'): FormData {
  const form = new FormData();
  form.append('purpose', 'batch');
  form.append('file', new Blob([content]), filename);
  return form;
}

/** OpenAI's error envelope with exactly its four keys, this status, type and code. */
export function expectError(r: RawAnswer, status: number, type: string, code: string, label = ''): void {
  const where = `${label} → ${r.status} ${r.text.slice(0, 300)}`;
  expect(r.status, where).toBe(status);
  expect(r.headers.get('content-type'), where).toMatch(/^application\/json/);
  expect(Object.keys(r.body ?? {}), where).toEqual(['error']);
  expect(Object.keys(r.body.error).sort(), where).toEqual(['code', 'message', 'param', 'type']);
  expect(r.body.error.type, where).toBe(type);
  expect(r.body.error.code, where).toBe(code);
  expect(typeof r.body.error.message, where).toBe('string');
}

/** Header names that differ between any two answers. */
const VOLATILE_HEADERS = new Set(['date', 'x-request-id', 'keep-alive', 'connection']);

/**
 * `hidden` (an answer about another project's `hiddenId`) is indistinguishable from `missing` (an
 * answer about a random well-formed `missingId` of the same length): status, envelope, message
 * with the id swapped, header names and values (but date and request id).
 */
export function expectSameAsMissing(hidden: RawAnswer, hiddenId: string, missing: RawAnswer, missingId: string, label: string): void {
  const where = `${label}: ${hidden.status} ${hidden.text.slice(0, 300)} vs ${missing.status} ${missing.text.slice(0, 300)}`;
  expect(hidden.status, where).toBe(404);
  expect(missing.status, where).toBe(404);
  expect(hidden.text.split(hiddenId).join('<ID>'), where).toBe(missing.text.split(missingId).join('<ID>'));
  const stable = (h: Headers): Array<[string, string]> => [...h.entries()].filter(([k]) => !VOLATILE_HEADERS.has(k)).sort(([a], [b]) => a.localeCompare(b));
  expect(stable(hidden.headers), where).toEqual(stable(missing.headers));
}

/** A random, well-formed id that names nothing, the same length as the ids BESH issues. */
export const randomFileId = (): string => newFileId();
export const randomBatchId = (): string => newBatchId();

/**
 * Reads `/v1/events` (server-sent events) with `key` until `stop()` is called; `ready` resolves
 * once the stream's head has arrived (so events sent from then on are seen).
 */
export function openEvents(besh: BeshProcess, key: string, query = ''): { ready: Promise<number>; ended: Promise<void>; stop(): Promise<string> } {
  const ctl = new AbortController();
  let text = '';
  let resolveReady!: (status: number) => void;
  const ready = new Promise<number>((r) => (resolveReady = r));
  const done = (async () => {
    try {
      const r = await fetch(`${besh.url}/v1/events${query}`, { headers: { authorization: `Bearer ${key}` }, signal: ctl.signal });
      resolveReady(r.status);
      if (!r.body) return;
      const decoder = new TextDecoder();
      for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true });
    } catch (err) {
      resolveReady(-1);
      if ((err as Error).name !== 'AbortError') throw err;
    }
  })();
  return {
    ready,
    /** Settles when the stream ends (the server closed it, or stop()). */
    ended: done,
    stop: async () => {
      ctl.abort();
      await done;
      return text;
    },
  };
}

/** The `event:`/`data:` pairs of an SSE text, data parsed as JSON. */
export function sseEvents(text: string): Array<{ event: string; data: any }> {
  const out: Array<{ event: string; data: any }> = [];
  for (const block of text.split('\n\n')) {
    const event = /^event: (.+)$/m.exec(block)?.[1];
    const data = /^data: (.+)$/m.exec(block)?.[1];
    if (event !== undefined && data !== undefined) out.push({ event, data: JSON.parse(data) });
  }
  return out;
}
