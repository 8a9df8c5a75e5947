/**
 * In-process engine harness (REVIEW.md §W6): the real engine on real parts, no HTTP, no build.
 *
 *   - a real `SqliteMetaStore` on a file in a temp dir, and a real `LocalBlobStore` in that dir;
 *   - a scripted fake `Upstream` (the engine's injected interface): per request it answers 200 with
 *     a chat completion and usage, a status, a network error, hangs until aborted, or waits first;
 *     it records every request (custom_id, replica, start, end, outcome);
 *   - any number of engines ("replicas") on the ONE store object, each through its own thin
 *     delegate that can report `singleReplica: false` (so `Engine.start()` does not free the
 *     others' leases) and is where faults are injected (fail or delay a verb, for one replica);
 *   - a blob-store delegate over the local store that counts reads, can gate `compose` and the
 *     commit of an upload, and can wrap segment writers (to make a write fail);
 *   - helpers to write input files, create batches, wait for a status and read result files;
 *   - cleanup (engines stopped, store closed, dir removed) registered with vitest's afterEach.
 *
 * Engine options are short (heartbeat 40 ms, lease TTL 200 ms, claim interval 25 ms) so that a test
 * sees leases expire, heartbeats react and janitors sweep within a few hundred milliseconds.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

import { afterEach } from 'vitest';

import { type BatchRecord, type BatchStatus, type FileRecord, newBatch, newFileId, nowSeconds, type Usage } from '../../src/domain/index.js';
import { Engine } from '../../src/engine/engine.js';
import type { EngineOptions, Logger } from '../../src/engine/engine-context.js';
import { inputFileKey } from '../../src/store/blob-keys.js';
import type { BlobPart, BlobStore, BlobUpload, SegmentWriter } from '../../src/store/blob-store.js';
import { composeParts } from '../../src/store/compose-parts.js';
import { LocalBlobStore } from '../../src/store/local-blob-store.js';
import type { MetaStore } from '../../src/store/meta-store.js';
import { SqliteMetaStore } from '../../src/store/sqlite/sqlite-meta-store.js';
import type { NetworkErrorCode, UpstreamOutcome } from '../../src/upstream/outcome.js';
import type { Upstream } from '../../src/upstream/upstream.js';
import type { UpstreamRequest } from '../../src/upstream/upstream-client.js';

// ── time ─────────────────────────────────────────────────────────────────────────────────────

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `pred` every few ms until it holds (returns its truthy value) or `timeoutMs` passes (throws, naming `what`). */
export async function waitUntil<T>(pred: () => T | Promise<T>, what: string, timeoutMs = 3_000, everyMs = 5): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * An `expires_at` (unix seconds) at least `minMs` from now. Batch deadlines are whole seconds, so
 * the deadline falls between `minMs` and `minMs + 1000` ms from now.
 */
export const expiresAtLeastIn = (minMs: number): number => Math.ceil((Date.now() + minMs) / 1000);

/** A promise a test opens by hand; `entered` settles when the first waiter arrives. */
export class Gate {
  readonly #opened: Promise<void>;
  readonly #entered: Promise<void>;
  #open!: () => void;
  #enter!: () => void;
  #isOpen = false;
  waiters = 0;

  constructor() {
    this.#opened = new Promise<void>((r) => (this.#open = r));
    this.#entered = new Promise<void>((r) => (this.#enter = r));
  }

  get isOpen(): boolean {
    return this.#isOpen;
  }

  /** Resolves once someone waits at the gate. */
  get entered(): Promise<void> {
    return this.#entered;
  }

  wait(): Promise<void> {
    this.waiters++;
    this.#enter();
    return this.#opened;
  }

  open(): void {
    this.#isOpen = true;
    this.#open();
  }
}

// ── the scripted upstream ────────────────────────────────────────────────────────────────────

/** Deterministic token counts of the fake chat completion for one custom_id. */
export function fakeUsage(customId: string): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  let h = 0;
  for (let i = 0; i < customId.length; i++) h = (h * 31 + customId.charCodeAt(i)) >>> 0;
  const prompt = 10 + (h % 13);
  const completion = 1 + (h % 7);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** The batch usage the engine should report for these answered custom_ids. */
export function expectedUsage(customIds: Iterable<string>): Usage {
  const u: Usage = { inputTokens: 0, cachedTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0 };
  for (const id of customIds) {
    const f = fakeUsage(id);
    u.inputTokens += f.prompt_tokens;
    u.outputTokens += f.completion_tokens;
    u.totalTokens += f.total_tokens;
  }
  return u;
}

/** How the fake upstream answers one attempt. `delayMs` waits first; `until` waits for a promise first (both abortable). */
export type Reply = (
  | { kind: 'ok'; usage?: boolean }
  | { kind: 'status'; status: number; body?: string; retryAfterMs?: number | null }
  | { kind: 'network_error'; code?: NetworkErrorCode }
  | { kind: 'hang' }
) & { delayMs?: number; until?: Promise<unknown> };

export const reply = {
  ok: (o: { delayMs?: number; until?: Promise<unknown>; usage?: boolean } = {}): Reply => ({ kind: 'ok', ...o }),
  status: (status: number, o: { delayMs?: number; body?: string; retryAfterMs?: number } = {}): Reply => ({ kind: 'status', status, ...o }),
  networkError: (code: NetworkErrorCode = 'connection_error', o: { delayMs?: number } = {}): Reply => ({ kind: 'network_error', code, ...o }),
  /** Never answers: waits until the engine aborts the request. */
  hang: (): Reply => ({ kind: 'hang' }),
  /** Answers 200 once `gate` opens (or is aborted meanwhile). */
  after: (gate: Gate | Promise<unknown>, then: Reply = { kind: 'ok' }): Reply => ({ ...then, until: gate instanceof Gate ? gate.wait() : gate }),
};

export interface SentRequest {
  seq: number;
  replica: string;
  customId: string;
  batchId: string;
  /** 1 for the first request with this custom_id (over every replica), 2 for the next… */
  attempt: number;
  startedAt: number;
  /** null while in flight. */
  endedAt: number | null;
  /** How the attempt ended: 'ok', 'status <n>', 'network_error', 'aborted'. */
  outcome: string | null;
}

export type Script = (req: SentRequest) => Reply;

/**
 * A scripted `Upstream`. `forReplica(id)` gives each engine its own view, so requests are
 * attributed to the replica that sent them.
 */
export class FakeUpstream {
  readonly requests: SentRequest[] = [];
  #script: Script;
  readonly #attempts = new Map<string, number>();
  readonly #shutdown = new AbortController();
  #inFlight = 0;
  maxInFlight = 0;

  constructor(script: Script = () => reply.ok({ delayMs: 2 })) {
    this.#script = script;
  }

  /** Replaces the script (for requests from now on). */
  script(s: Script): void {
    this.#script = s;
  }

  /** Requests in flight now (of one replica, or all). */
  inFlight(replica?: string): number {
    if (replica === undefined) return this.#inFlight;
    return this.requests.filter((r) => r.replica === replica && r.endedAt === null).length;
  }

  /**
   * Requests of one replica in flight at time `t` (ms): started at or before it, not answered
   * before it. A request aborted by a stop at `t` ends in that same millisecond, so "ended at or
   * after `t`, without an answer" counts as in flight.
   */
  inFlightAt(replica: string, t: number): SentRequest[] {
    return this.requests.filter((r) => r.replica === replica && r.startedAt <= t && (r.endedAt === null || r.endedAt > t || (r.endedAt === t && r.outcome !== 'ok')));
  }

  /** Distinct custom_ids sent (by one replica, or any). */
  customIds(replica?: string): Set<string> {
    return new Set(this.requests.filter((r) => replica === undefined || r.replica === replica).map((r) => r.customId));
  }

  sentFor(batchId: string): SentRequest[] {
    return this.requests.filter((r) => r.batchId === batchId);
  }

  forReplica(replica: string): Upstream {
    return {
      send: (req, signal) => this.#send(replica, req, signal),
      models: () => null,
      servesModel: () => true,
      close: async () => {},
    };
  }

  /** Cleanup: every request still waiting ends as aborted. */
  abortAll(): void {
    this.#shutdown.abort(new Error('harness closing'));
  }

  async #send(replica: string, req: UpstreamRequest, signal: AbortSignal): Promise<UpstreamOutcome> {
    const attempt = (this.#attempts.get(req.customId) ?? 0) + 1;
    this.#attempts.set(req.customId, attempt);
    const rec: SentRequest = { seq: this.requests.length, replica, customId: req.customId, batchId: req.batchId, attempt, startedAt: Date.now(), endedAt: null, outcome: null };
    this.requests.push(rec);
    this.#inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.#inFlight);
    let out: UpstreamOutcome;
    try {
      out = await this.#answer(rec, signal);
    } catch (err) {
      out = { kind: 'network_error', code: 'connection_error', message: `fake upstream script threw: ${String(err)}` };
    }
    rec.endedAt = Date.now();
    rec.outcome = out.kind === 'response' ? (out.status === 200 ? 'ok' : `status ${out.status}`) : out.kind;
    this.#inFlight--;
    return out;
  }

  async #answer(rec: SentRequest, signal: AbortSignal): Promise<UpstreamOutcome> {
    const r = this.#script(rec);
    const stop = AbortSignal.any([signal, this.#shutdown.signal]);
    const waitFor = (p: Promise<unknown>): Promise<boolean> =>
      new Promise<boolean>((resolve) => {
        if (stop.aborted) return resolve(false);
        const onAbort = (): void => resolve(false);
        stop.addEventListener('abort', onAbort, { once: true });
        p.then(
          () => {
            stop.removeEventListener('abort', onAbort);
            resolve(true);
          },
          () => resolve(true),
        );
      });
    if (stop.aborted) return { kind: 'aborted' };
    if (r.kind === 'hang') {
      await waitFor(new Promise(() => {}));
      return { kind: 'aborted' };
    }
    if (r.delayMs !== undefined && r.delayMs > 0 && !(await waitFor(sleep(r.delayMs)))) return { kind: 'aborted' };
    if (r.until !== undefined && !(await waitFor(r.until))) return { kind: 'aborted' };
    if (stop.aborted) return { kind: 'aborted' };
    switch (r.kind) {
      case 'ok': {
        const body: Record<string, unknown> = {
          id: `chatcmpl-${rec.customId}`,
          object: 'chat.completion',
          created: 0,
          model: 'mock-model',
          choices: [{ index: 0, message: { role: 'assistant', content: `answer to ${rec.customId}` }, finish_reason: 'stop' }],
        };
        if (r.usage !== false) body['usage'] = fakeUsage(rec.customId);
        return { kind: 'response', status: 200, body: JSON.stringify(body), requestId: `req-${rec.seq}`, retryAfterMs: null };
      }
      case 'status':
        return {
          kind: 'response',
          status: r.status,
          body: r.body ?? JSON.stringify({ error: { message: `scripted ${r.status}`, type: 'scripted' } }),
          requestId: `req-${rec.seq}`,
          retryAfterMs: r.retryAfterMs ?? null,
        };
      case 'network_error':
        return { kind: 'network_error', code: r.code ?? 'connection_error', message: 'scripted network error' };
    }
  }
}

// ── the store delegate (per replica) and its faults ──────────────────────────────────────────

export type Verb = Exclude<keyof MetaStore, 'capabilities'>;

export interface StoreCall {
  replica: string;
  verb: Verb;
  args: unknown[];
  at: number;
  /** Set when the call settled. */
  settledAt: number | null;
  result?: unknown;
  error?: unknown;
}

interface Rule {
  /** '*': every verb. */
  verb: Verb | '*';
  replica: string | undefined;
  times: number;
  fn: (c: { replica: string; args: unknown[] }) => void | Promise<void>;
}

/**
 * Faults for the replicas' store delegates: a rule runs before a verb (of one replica, or all)
 * and may wait (a delay, a gate) or throw (the call rejects with it). Every call is recorded.
 */
export class StoreFaults {
  readonly calls: StoreCall[] = [];
  readonly #rules: Rule[] = [];

  /** Runs `fn` before each matching call (at most `times` calls); returns a remover. */
  before(verb: Verb | '*', fn: Rule['fn'], opts: { replica?: string; times?: number } = {}): () => void {
    const rule: Rule = { verb, replica: opts.replica, times: opts.times ?? Infinity, fn };
    this.#rules.push(rule);
    return () => this.#remove(rule);
  }

  /** Makes the verb reject (for one replica, or all), optionally after `delayMs`. */
  fail(verb: Verb | '*', opts: { replica?: string; times?: number; delayMs?: number; error?: () => Error } = {}): () => void {
    return this.before(
      verb,
      async ({ replica }) => {
        if (opts.delayMs) await sleep(opts.delayMs);
        throw opts.error?.() ?? new Error(`injected: ${verb} of ${replica} fails`);
      },
      opts,
    );
  }

  /**
   * Cuts `replica` off from the store: every verb it calls rejects from now on (heartbeats after
   * `heartbeatDelayMs`, as a call that times out). Returns a remover.
   */
  partition(replica: string, opts: { heartbeatDelayMs?: number } = {}): () => void {
    const off = [
      this.fail('heartbeat', { replica, delayMs: opts.heartbeatDelayMs ?? 0, error: () => new Error(`injected: ${replica} cannot reach the store`) }),
      this.before(
        '*',
        ({ replica: r }) => {
          if (r === replica) throw new Error(`injected: ${replica} cannot reach the store`);
        },
        { replica },
      ),
    ];
    return () => off.forEach((f) => f());
  }

  delay(verb: Verb, ms: number, opts: { replica?: string; times?: number } = {}): () => void {
    return this.before(verb, () => sleep(ms), opts);
  }

  /** Holds matching calls at `gate` until it opens. */
  hold(verb: Verb, gate: Gate, opts: { replica?: string; times?: number } = {}): () => void {
    return this.before(verb, () => gate.wait(), opts);
  }

  clear(): void {
    this.#rules.length = 0;
  }

  /** Calls recorded (optionally of one verb and one replica). */
  of(verb?: Verb, replica?: string): StoreCall[] {
    return this.calls.filter((c) => (verb === undefined || c.verb === verb) && (replica === undefined || c.replica === replica));
  }

  /** Runs a delegated call: synchronously into the store when no rule matches (as the real store does). */
  call(replica: string, verb: Verb, args: unknown[], invoke: () => Promise<unknown>): Promise<unknown> {
    const rules = this.#rules.filter((r) => (r.verb === verb || r.verb === '*') && (r.replica === undefined || r.replica === replica) && r.times > 0);
    for (const r of rules) if (--r.times <= 0) this.#remove(r);
    const rec: StoreCall = { replica, verb, args, at: Date.now(), settledAt: null };
    this.calls.push(rec);
    const p =
      rules.length === 0
        ? invoke()
        : (async () => {
            for (const r of rules) await r.fn({ replica, args });
            return invoke();
          })();
    p.then(
      (result) => {
        rec.settledAt = Date.now();
        rec.result = result;
      },
      (error: unknown) => {
        rec.settledAt = Date.now();
        rec.error = error;
      },
    );
    return p;
  }

  #remove(rule: Rule): void {
    const i = this.#rules.indexOf(rule);
    if (i >= 0) this.#rules.splice(i, 1);
  }
}

/** A thin delegate over the one store: its own capabilities, every verb through `faults`. */
function replicaStore(target: SqliteMetaStore, replica: string, faults: StoreFaults, singleReplica: boolean): MetaStore {
  const capabilities = Object.freeze({ ...target.capabilities, singleReplica });
  return new Proxy(target, {
    get(t, prop) {
      if (prop === 'capabilities') return capabilities;
      const v: unknown = Reflect.get(t, prop, t);
      if (typeof v !== 'function' || typeof prop !== 'string') return v;
      const fn = v as (...a: unknown[]) => unknown;
      // Not a store write: the feed's subscribe is synchronous, and closing is the harness's job.
      if (prop === 'subscribe') return fn.bind(t);
      if (prop === 'close') return async () => {};
      return (...args: unknown[]) => faults.call(replica, prop as Verb, args, () => fn.apply(t, args) as Promise<unknown>);
    },
  });
}

// ── the blob-store delegate ──────────────────────────────────────────────────────────────────

export interface BlobRead {
  key: string;
  start: number | undefined;
  end: number | undefined;
  at: number;
}

export interface SegmentAppend {
  key: string;
  at: number;
  customId: string | null;
}

/** What a test may change in the blob store's behaviour. */
export interface BlobHooks {
  /** Wraps a new segment writer (return it, or a faulty one). */
  openSegment?: (key: string, writer: SegmentWriter) => SegmentWriter;
  /** Runs before a compose starts (may wait). */
  beforeCompose?: (key: string, parts: readonly BlobPart[]) => void | Promise<void>;
  /** Runs when an upload is committed, before it lands (may wait). */
  beforeCommit?: (key: string) => void | Promise<void>;
}

/**
 * The local blob store through a delegate: reads and appends are recorded, and `hooks` can
 * delay a compose or an upload's commit, or wrap segment writers. Compose streams through the
 * delegate (composeParts over this store), so its upload passes `beforeCommit` too.
 */
export class HarnessBlobs implements BlobStore {
  readonly kind = 'local';
  readonly durableAppend = true;
  readonly composeByReference = false;
  readonly real: LocalBlobStore;
  readonly reads: BlobRead[] = [];
  readonly appends: SegmentAppend[] = [];
  readonly composes: Array<{ key: string; parts: readonly BlobPart[]; at: number }> = [];
  hooks: BlobHooks = {};

  constructor(real: LocalBlobStore) {
    this.real = real;
  }

  createUpload(key: string): BlobUpload {
    const up = this.real.createUpload(key);
    return {
      stream: up.stream,
      commit: async () => {
        await this.hooks.beforeCommit?.(key);
        await up.commit();
      },
      abort: () => up.abort(),
    };
  }

  openRead(key: string, opts: { start?: number; end?: number } = {}): Readable {
    this.reads.push({ key, start: opts.start, end: opts.end, at: Date.now() });
    return this.real.openRead(key, opts);
  }

  size(key: string): Promise<number | null> {
    return this.real.size(key);
  }

  delete(key: string): Promise<void> {
    return this.real.delete(key);
  }

  deletePrefix(prefix: string, keep?: ReadonlySet<string>): Promise<number> {
    return this.real.deletePrefix(prefix, keep);
  }

  openSegment(key: string): SegmentWriter {
    const inner = this.real.openSegment(key);
    const appends = this.appends;
    const recorded: SegmentWriter = {
      key,
      get lines() {
        return inner.lines;
      },
      get bytes() {
        return inner.bytes;
      },
      append(line: string) {
        inner.append(line);
        appends.push({ key, at: Date.now(), customId: /"custom_id":"((?:[^"\\]|\\.)*)"/.exec(line)?.[1] ?? null });
      },
      written: () => inner.written(),
      seal: () => inner.seal(),
      discard: () => inner.discard(),
    };
    return this.hooks.openSegment ? this.hooks.openSegment(key, recorded) : recorded;
  }

  async compose(key: string, parts: readonly BlobPart[]): Promise<number> {
    this.composes.push({ key, parts, at: Date.now() });
    await this.hooks.beforeCompose?.(key, parts);
    return composeParts(this, key, parts);
  }

  freeBytes(): Promise<number | null> {
    return this.real.freeBytes();
  }

  cleanTemp(olderThanMs: number): Promise<number> {
    return this.real.cleanTemp(olderThanMs);
  }

  close(): Promise<void> {
    return this.real.close();
  }

  /** Keys of the blobs under `prefix` (e.g. `batches/<id>/`), read from the directory. */
  keysUnder(prefix: string): string[] {
    const dir = join(this.real.rootDir, ...prefix.split('/').filter((p) => p !== ''));
    if (!existsSync(dir)) return [];
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name).slice(this.real.rootDir.length + 1).split('\\').join('/'))
      .sort();
  }

  /** The blob's text (the whole blob, or its first `bytes` bytes). */
  async text(key: string, bytes?: number): Promise<string> {
    if (bytes === 0) return '';
    const chunks: Buffer[] = [];
    for await (const c of this.real.openRead(key, bytes === undefined ? {} : { end: bytes - 1 })) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
}

/** A segment writer that fails like a full or broken disk, from its `afterLines`-th append on. */
export function faultyWriter(inner: SegmentWriter, mode: 'append' | 'written' | 'seal', afterLines = 0, message = 'EIO: injected write error'): SegmentWriter {
  const err = (): Error => Object.assign(new Error(message), { code: 'EIO' });
  return {
    key: inner.key,
    get lines() {
      return inner.lines;
    },
    get bytes() {
      return inner.bytes;
    },
    append(line: string) {
      if (mode === 'append' && inner.lines >= afterLines) throw err();
      inner.append(line);
    },
    written: () => (mode === 'written' && inner.lines > afterLines ? Promise.reject(err()) : inner.written()),
    seal: async () => {
      if (mode === 'seal') {
        await inner.seal().catch(() => undefined);
        throw err();
      }
      return inner.seal();
    },
    discard: () => inner.discard(),
  };
}

// ── the harness ──────────────────────────────────────────────────────────────────────────────

export const TEST_ENGINE_OPTIONS: EngineOptions = {
  maxConcurrentBatches: 4,
  maxLineBytes: 1024 * 1024,
  maxRequestsPerBatch: 100_000,
  maxValidationErrors: 10,
  endpoints: ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses'],
  shutdownGraceMs: 150,
  cancelGraceMs: 150,
  heartbeatMs: 40,
  leaseTtlMs: 200,
  shardLines: 10,
  segmentFlushMs: 50,
  segmentMaxBytes: 1024 * 1024,
  claimIntervalMs: 25,
  prefixOrder: false,
  prefixAffinity: false,
  sendPriority: false,
  retry: { maxAttempts: 3, baseMs: 4, maxMs: 20 },
};

export interface LogEntry {
  at: number;
  replica: string;
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  obj: object;
}

export interface EventEntry {
  at: number;
  replica: string;
  batchId: string;
  status: BatchStatus | 'deleted';
}

export interface ReplicaOptions {
  id?: string;
  maxWorkers?: number;
  opts?: Partial<EngineOptions>;
  /**
   * What the replica's store reports as `capabilities.singleReplica`. True (the SQLite default)
   * makes `start()` free every lease: only for a replica alone on the store.
   */
  singleReplica?: boolean;
}

export interface Replica {
  id: string;
  engine: Engine;
  /** The replica's delegate over the one store. */
  store: MetaStore;
  /** Stops the engine once (later calls await the same stop). */
  stop(): Promise<void>;
}

export interface Claim {
  replica: string;
  kind: 'shard' | 'batch';
  batchId: string;
  project: string;
  shardNo: number | null;
  epoch: number;
  at: number;
}

export interface Results {
  output: Array<Record<string, any>>;
  error: Array<Record<string, any>>;
  outputText: string;
  errorText: string;
}

export interface HarnessOptions {
  /** Defaults for every engine started by this harness. */
  opts?: Partial<EngineOptions>;
  maxWorkers?: number;
  script?: Script;
}

export class EngineHarness {
  readonly dir: string;
  /** The one real store every replica's delegate wraps (for direct checks). */
  readonly store: SqliteMetaStore;
  readonly blobs: HarnessBlobs;
  readonly upstream: FakeUpstream;
  readonly faults = new StoreFaults();
  readonly logs: LogEntry[] = [];
  readonly events: EventEntry[] = [];
  readonly replicas: Replica[] = [];
  readonly #defaults: HarnessOptions;
  readonly #gates: Gate[] = [];
  #replicaSeq = 0;
  #closed = false;

  private constructor(dir: string, o: HarnessOptions) {
    this.dir = dir;
    this.#defaults = o;
    this.store = SqliteMetaStore.open(join(dir, 'besh.sqlite'));
    this.blobs = new HarnessBlobs(new LocalBlobStore(join(dir, 'blobs')));
    this.upstream = new FakeUpstream(o.script);
  }

  static create(o: HarnessOptions = {}): EngineHarness {
    return new EngineHarness(mkdtempSync(join(tmpdir(), 'besh-engine-harness-')), o);
  }

  /** A gate the cleanup opens (so that nothing stays blocked when a test fails). */
  gate(): Gate {
    const g = new Gate();
    this.#gates.push(g);
    return g;
  }

  /** Engine options of a replica: the harness defaults, then `o`. */
  options(o: Partial<EngineOptions> = {}): EngineOptions {
    return { ...TEST_ENGINE_OPTIONS, ...this.#defaults.opts, ...o };
  }

  /** Starts one engine. Alone on the store by default (singleReplica: true, as SQLite declares). */
  async startEngine(o: ReplicaOptions = {}): Promise<Replica> {
    const singleReplica = o.singleReplica ?? true;
    if (singleReplica && this.replicas.some((r) => r.engine.state !== 'stopped')) {
      throw new Error('a second engine on the store must be started with singleReplica: false (its start would free the leases of the first)');
    }
    const id = o.id ?? `r${++this.#replicaSeq}`;
    const store = replicaStore(this.store, id, this.faults, singleReplica);
    const engine = new Engine({
      store,
      blobs: this.blobs,
      upstream: this.upstream.forReplica(id),
      log: this.#logger(id),
      maxWorkers: o.maxWorkers ?? this.#defaults.maxWorkers ?? 4,
      opts: this.options(o.opts),
      replica: { id, host: 'harness', pid: process.pid, version: 'test' },
    });
    engine.events.on('batch:status', (b) => this.events.push({ at: Date.now(), replica: id, batchId: b.id, status: b.status }));
    engine.events.on('batch:deleted', (batchId) => this.events.push({ at: Date.now(), replica: id, batchId, status: 'deleted' }));
    let stopping: Promise<void> | null = null;
    const replica: Replica = { id, engine, store, stop: () => (stopping ??= engine.stop()) };
    this.replicas.push(replica);
    await engine.start();
    return replica;
  }

  /** Starts `n` replicas on the one store (each reporting singleReplica: false), one after the other. */
  async startReplicas(n: number, o: Omit<ReplicaOptions, 'id' | 'singleReplica'> & { ids?: string[] } = {}): Promise<Replica[]> {
    const out: Replica[] = [];
    for (let i = 0; i < n; i++) out.push(await this.startEngine({ ...o, id: o.ids?.[i] ?? String.fromCharCode(65 + this.replicas.length), singleReplica: false }));
    return out;
  }

  /**
   * Writes an input file (blob + FileRecord with its lines counted). `lines` is the JSONL text, or
   * a count of chat-completion requests with custom_ids `${prefix}-${i}`.
   */
  async writeInput(lines: number | string, o: { prefix?: string; project?: string; model?: string } = {}): Promise<{ file: FileRecord; ids: string[] }> {
    const prefix = o.prefix ?? 'req';
    const text = typeof lines === 'string' ? lines : chatLines(lines, prefix, o.model);
    const ids: string[] = [];
    for (const l of text.split('\n')) {
      if (l.trim() === '') continue;
      const id = (JSON.parse(l) as { custom_id?: unknown }).custom_id;
      if (typeof id === 'string') ids.push(id);
    }
    const id = newFileId();
    const key = inputFileKey(id);
    const up = this.blobs.real.createUpload(key);
    up.stream.end(text);
    await up.commit();
    const file: FileRecord = {
      id,
      filename: 'input.jsonl',
      purpose: 'batch',
      bytes: Buffer.byteLength(text),
      createdAt: nowSeconds(),
      expiresAt: null,
      blobKey: key,
      batchId: null,
      project: o.project ?? 'proj-a',
      lines: text.split('\n').filter((l) => l.trim() !== '').length,
    };
    if (!(await this.store.insertFile(file))) throw new Error('insertFile refused the input');
    return { file, ids };
  }

  /** A new batch record on `input` (validating), not yet stored. */
  batchOf(input: FileRecord, o: { project?: string; expiresAt?: number; id?: string } = {}): BatchRecord {
    const now = nowSeconds();
    return newBatch({
      ...(o.id === undefined ? {} : { id: o.id }),
      project: o.project ?? input.project,
      inputFileId: input.id,
      endpoint: '/v1/chat/completions',
      completionWindow: '24h',
      metadata: null,
      createdAt: now,
      expiresAt: o.expiresAt ?? now + 86_400,
      outputExpiresAfter: null,
    });
  }

  /** Creates a batch through `engine.create` (of `via`, or the first replica). */
  async createBatch(input: FileRecord, o: { via?: Replica; project?: string; expiresAt?: number } = {}): Promise<BatchRecord> {
    const via = o.via ?? this.replicas[0];
    if (!via) throw new Error('no engine started');
    const b = this.batchOf(input, o);
    const refused = await via.engine.create(b);
    if (refused !== null) throw new Error(`batch refused by quota ${refused}`);
    return b;
  }

  async batch(id: string): Promise<BatchRecord> {
    const b = await this.store.getBatch(id);
    if (!b) throw new Error(`no batch ${id}`);
    return b;
  }

  /** Waits until the batch is in `status` (or one of them); throws with the last seen status. */
  async waitForStatus(id: string, status: BatchStatus | readonly BatchStatus[], timeoutMs = 3_000): Promise<BatchRecord> {
    const want: readonly BatchStatus[] = typeof status === 'string' ? [status] : status;
    let last: BatchStatus | 'gone' = 'gone';
    try {
      return await waitUntil(
        async () => {
          const b = await this.store.getBatch(id);
          last = b?.status ?? 'gone';
          return b && want.includes(b.status) ? b : null;
        },
        `batch ${id} to be ${want.join('|')}`,
        timeoutMs,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message} (last status: ${last})`, { cause: err });
    }
  }

  /** Waits until the batch is finished (any terminal status). */
  waitDone(id: string, timeoutMs = 3_000): Promise<BatchRecord> {
    return this.waitForStatus(id, ['completed', 'failed', 'expired', 'cancelled'], timeoutMs);
  }

  /** The lines of a batch's output and error files (read through the blob store). */
  async readResults(batchOrId: BatchRecord | string): Promise<Results> {
    const b = typeof batchOrId === 'string' ? await this.batch(batchOrId) : batchOrId;
    const read = async (fileId: string | null): Promise<string> => {
      if (fileId === null) return '';
      const f = await this.store.getFile(fileId);
      if (!f) throw new Error(`result file ${fileId} of ${b.id} has no record`);
      const chunks: Buffer[] = [];
      for await (const c of this.blobs.openRead(f.blobKey)) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    };
    const outputText = await read(b.outputFileId);
    const errorText = await read(b.errorFileId);
    const parse = (t: string): Array<Record<string, any>> =>
      t
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, any>);
    return { output: parse(outputText), error: parse(errorText), outputText, errorText };
  }

  /** Successful claims (shard and batch leases), in order, from the store calls. */
  claims(): Claim[] {
    const out: Claim[] = [];
    for (const c of this.faults.calls) {
      if (c.result === null || c.result === undefined) continue;
      if (c.verb === 'claimShard') {
        const l = c.result as { batchId: string; shardNo: number; epoch: number; batch: BatchRecord };
        out.push({ replica: c.replica, kind: 'shard', batchId: l.batchId, project: l.batch.project, shardNo: l.shardNo, epoch: l.epoch, at: c.at });
      } else if (c.verb === 'claimBatch') {
        const l = c.result as { epoch: number; batch: BatchRecord };
        out.push({ replica: c.replica, kind: 'batch', batchId: l.batch.id, project: l.batch.project, shardNo: null, epoch: l.epoch, at: c.at });
      }
    }
    return out;
  }

  /** Log entries (of one replica) whose message contains `text`. */
  logged(text: string, replica?: string): LogEntry[] {
    return this.logs.filter((l) => l.msg.includes(text) && (replica === undefined || l.replica === replica));
  }

  /** Full reads (no byte range) of a blob: the validator reads the whole input once. */
  fullReads(key: string): BlobRead[] {
    return this.blobs.reads.filter((r) => r.key === key && r.start === undefined && r.end === undefined);
  }

  /** Stops every engine, closes the store, removes the directory. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.faults.clear();
    this.blobs.hooks = {};
    for (const g of this.#gates) g.open();
    this.upstream.abortAll();
    await Promise.all(this.replicas.map((r) => r.stop()));
    await this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  #logger(replica: string): Logger {
    const echo = process.env['BESH_HARNESS_LOG'] === '1';
    const at =
      (level: LogEntry['level']) =>
      (obj: object, msg = ''): void => {
        this.logs.push({ at: Date.now(), replica, level, msg, obj });
        if (echo) console.log(`${Date.now() % 100_000} [${replica}] ${level} ${msg} ${safeJson(obj)}`);
      };
    return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  }
}

function safeJson(o: object): string {
  try {
    return JSON.stringify(o, (_k, v: unknown) => (v instanceof Error ? `${v.name}: ${v.message}` : v));
  } catch {
    return '[unserializable]';
  }
}

/** `n` chat-completion request lines with custom_ids `${prefix}-${i}`, as JSONL text. */
export function chatLines(n: number, prefix = 'req', model = 'mock-model'): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      JSON.stringify({
        custom_id: `${prefix}-${i}`,
        method: 'POST',
        url: '/v1/chat/completions',
        body: { model, messages: [{ role: 'user', content: `question ${i}` }], max_tokens: 16 },
      }),
    );
  }
  return `${out.join('\n')}\n`;
}

/**
 * A harness per test, closed after it (vitest afterEach). Call at the top of a test file or a
 * describe block; each call of the returned function builds a fresh harness (temp dir, store…).
 */
export function useEngineHarness(defaults: HarnessOptions = {}): (o?: HarnessOptions) => EngineHarness {
  const open: EngineHarness[] = [];
  afterEach(async () => {
    for (const h of open.splice(0)) await h.close();
  });
  return (o = {}) => {
    const h = EngineHarness.create({ ...defaults, ...o, opts: { ...defaults.opts, ...o.opts } });
    open.push(h);
    return h;
  };
}
