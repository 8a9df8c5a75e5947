import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';

import {
  type BatchRecord,
  type BatchStatus,
  coerceError,
  emptyUsage,
  type FileRecord,
  newBatchRequestId,
  newFileId,
  nowSeconds,
  type RequestCounts,
  type Usage,
} from '../domain/index.js';
import { addUsage, errorLine, isBlankLine, readLines, ResultWriter, scanResultFile } from '../jsonl/index.js';
import { setLongTimeout } from './abortable-sleep.js';
import { type EngineContext, errorKey, outputKey } from './engine-context.js';
import { usageOfOutputLine } from './response-usage.js';
import { type LineRequest, type SendContext, sendRequest } from './send-request.js';
import { validateInput } from './validate-input.js';

/**
 * Runs one batch from where the store says it is to a terminal status (or until shutdown).
 *
 * Phases:
 *   validating   read the whole input once, check every line → in_progress | failed
 *   running      stream the input; for each line not already in the output/error files (resume),
 *                take a fair slot, send upstream with retries, append the result
 *   settling     input exhausted or stop requested: wait for in-flight requests
 *   finishing    completed | cancelled | expired (writing the lines never sent to the error
 *                file as batch_cancelled / batch_expired), or nothing on shutdown/delete
 *
 * Stop reasons:
 *   cancel    stop taking lines, let in-flight requests end within cancelGraceMs, then abort them
 *   expire    the deadline passed: abort everything at once
 *   shutdown  stop taking lines, let in-flight end within shutdownGraceMs; the batch stays
 *             in_progress and resumes from its files at next start
 *   delete    abort everything, write nothing more (the batch is being removed)
 *
 * The output/error files are the source of truth for "done": nothing is written per request to
 * the store; counters are flushed every progressFlushMs and recomputed from the files on resume.
 */
export type StopReason = 'cancel' | 'expire' | 'shutdown' | 'delete';

const STOP_PRIORITY: Record<StopReason, number> = { shutdown: 1, cancel: 2, expire: 3, delete: 4 };


export class BatchRunner {
  readonly batchId: string;
  readonly project: string;
  readonly #ctx: EngineContext;
  #counts: RequestCounts = { total: 0, completed: 0, failed: 0 };
  #usage: Usage = emptyUsage();
  #inFlight = 0;
  #dirty = false;
  #stopReason: StopReason | null = null;
  /** Aborts waiting for slots and retry backoffs: no new attempt starts. */
  readonly #stopTaking = new AbortController();
  /** Aborts requests already sent upstream. */
  readonly #abortRequests = new AbortController();
  #graceTimer: NodeJS.Timeout | null = null;
  #idleWaiters: Array<() => void> = [];
  /** Custom ids whose request was aborted before a result was written. */
  readonly #abandoned: string[] = [];
  /** Highest input line handed to a request; later lines were never sent. */
  #lastStartedLine = 0;
  #out: ResultWriter | null = null;
  /** The first error that kept a result from being written; the batch fails with it. */
  #fatal: unknown = null;
  /** The batch's `output_expires_after` (seconds), stamped on its output/error files. */
  #outputExpiresAfter: number | null = null;
  #err: ResultWriter | null = null;

  readonly #send: SendContext;

  constructor(ctx: EngineContext, batchId: string, project: string) {
    this.#ctx = ctx;
    this.batchId = batchId;
    this.project = project;
    this.#send = {
      batchId,
      project,
      upstream: ctx.upstream,
      retry: ctx.opts.retry,
      events: ctx.events,
      abortRequests: this.#abortRequests.signal,
      stopTaking: this.#stopTaking.signal,
    };
  }

  get counts(): RequestCounts {
    return { ...this.#counts };
  }
  get usage(): Usage {
    return { ...this.#usage };
  }
  get inFlight(): number {
    return this.#inFlight;
  }
  get stopReason(): StopReason | null {
    return this.#stopReason;
  }

  stop(reason: StopReason): void {
    if (this.#stopReason && STOP_PRIORITY[this.#stopReason] >= STOP_PRIORITY[reason]) return;
    this.#stopReason = reason;
    if (!this.#stopTaking.signal.aborted) this.#stopTaking.abort(new Error(`batch ${reason}`));
    if (reason === 'expire' || reason === 'delete') {
      this.#abortNow();
      return;
    }
    const grace = reason === 'cancel' ? this.#ctx.opts.cancelGraceMs : this.#ctx.opts.shutdownGraceMs;
    if (this.#graceTimer) clearTimeout(this.#graceTimer);
    this.#graceTimer = setTimeout(() => this.#abortNow(), grace);
    this.#graceTimer.unref();
  }

  #abortNow(): void {
    if (!this.#abortRequests.signal.aborted) this.#abortRequests.abort(new Error('requests aborted'));
  }

  /** Drives the batch; never rejects (unexpected faults fail the batch with a clear error). */
  async run(): Promise<void> {
    const { store, log } = this.#ctx;
    let expiry: { clear(): void } | null = null;
    try {
      let batch = await store.getBatch(this.batchId);
      if (!batch) return;
      // Until the resume scan recounts them from the files, show the saved figures, not zeros.
      this.#counts = { ...batch.requestCounts };
      this.#usage = { ...batch.usage };
      this.#outputExpiresAfter = batch.outputExpiresAfter;
      expiry = setLongTimeout(() => this.stop('expire'), batch.expiresAt * 1000 - Date.now());
      if (batch.status === 'validating') {
        // A cancel may have moved the batch while it validated: read where it is now.
        batch = (await this.#validate(batch)) ?? (await store.getBatch(this.batchId));
        if (!batch) return;
      }
      if (batch.status === 'in_progress' || batch.status === 'finalizing' || batch.status === 'cancelling') {
        await this.#process(batch);
      }
    } catch (err) {
      log.error({ err, batchId: this.batchId }, 'batch runner failed');
      await this.#failUnexpectedly(err).catch((e: unknown) => log.error({ err: e, batchId: this.batchId }, 'could not mark batch failed'));
    } finally {
      expiry?.clear();
      if (this.#graceTimer) clearTimeout(this.#graceTimer);
    }
  }

  async #validate(batch: BatchRecord): Promise<BatchRecord | null> {
    const { store } = this.#ctx;
    const input = await store.getFile(batch.inputFileId);
    if (!input) {
      return this.#transition(['validating'], 'failed', {
        errors: [
          { code: 'invalid_request', message: `Cannot find file ${batch.inputFileId}.`, param: 'input_file_id', line: null },
        ],
      });
    }
    let result;
    try {
      result = await validateInput(this.#ctx, input.blobKey, batch.endpoint, this.#stopTaking.signal);
    } catch (err) {
      if (this.#stopReason) return this.#stopWhileValidating();
      throw err;
    }
    if (this.#stopReason) return this.#stopWhileValidating();
    if (result.errors.length > 0) {
      return this.#transition(['validating'], 'failed', {
        errors: result.errors,
        requestCounts: { total: result.total, completed: 0, failed: 0 },
      });
    }
    this.#counts = { total: result.total, completed: 0, failed: 0 };
    return this.#transition(['validating'], 'in_progress', { requestCounts: this.#counts, model: result.model });
  }

  async #stopWhileValidating(): Promise<null> {
    switch (this.#stopReason) {
      case 'cancel':
        await this.#transition(['validating', 'cancelling'], 'cancelled', {});
        break;
      case 'expire':
        await this.#transition(['validating'], 'expired', {});
        break;
      default:
        break; // shutdown: validate again next start; delete: the batch is going away
    }
    return null;
  }

  async #process(batch: BatchRecord): Promise<void> {
    const { store, blobs, opts } = this.#ctx;
    const input = await store.getFile(batch.inputFileId);
    if (!input) throw new Error(`input file ${batch.inputFileId} of batch ${batch.id} is missing`);

    // Resume: whatever is in the output/error files is done and is not sent again.
    const done = new Set<string>();
    const usage = emptyUsage();
    const outScan = await scanResultFile(blobs.pathOf(outputKey(batch.id)), (text) => {
      const u = usageOfOutputLine(text);
      if (u) addUsage(usage, u);
    });
    const errScan = await scanResultFile(blobs.pathOf(errorKey(batch.id)));
    for (const id of outScan.customIds) done.add(id);
    for (const id of errScan.customIds) done.add(id);
    this.#counts = { total: Math.max(batch.requestCounts.total, this.#counts.total), completed: outScan.lines, failed: errScan.lines };
    this.#usage = usage;
    await mkdir(dirname(blobs.pathOf(outputKey(batch.id))), { recursive: true });
    this.#out = await ResultWriter.open(blobs.pathOf(outputKey(batch.id)), outScan);
    this.#err = await ResultWriter.open(blobs.pathOf(errorKey(batch.id)), errScan);

    if (batch.status === 'cancelling') this.stop('cancel');
    const flusher = setInterval(() => void this.#flushProgress(), opts.progressFlushMs);
    flusher.unref();
    try {
      if (batch.status !== 'finalizing') await this.#sendAll(input.blobKey, done);
      await this.#settled();
      if (this.#graceTimer) clearTimeout(this.#graceTimer);
      if (this.#fatal !== null) throw coerceError(this.#fatal);
      await this.#finish(batch, input.blobKey, done);
    } finally {
      clearInterval(flusher);
      await this.#out.close();
      await this.#err.close();
    }
  }

  async #sendAll(inputKey: string, done: Set<string>): Promise<void> {
    const { blobs, slots, opts } = this.#ctx;
    const stream = blobs.openRead(inputKey);
    try {
      for await (const raw of readLines(stream, { maxLineBytes: opts.maxLineBytes })) {
        if (this.#stopReason) break;
        if (isBlankLine(raw.text)) continue;
        const req = parseRequest(raw.text);
        if (done.has(req.customId)) continue;
        try {
          await slots.acquire(this.batchId, this.#stopTaking.signal, this.project);
        } catch {
          break; // stop requested while waiting for a slot
        }
        this.#lastStartedLine = raw.line;
        this.#launch(req);
      }
    } finally {
      stream.destroy();
    }
  }

  #launch(req: LineRequest): void {
    this.#inFlight++;
    void this.#dispatch(req)
      .catch((err: unknown) => {
        // A result that cannot be written (disk full, I/O error) must not vanish: stop the batch
        // and fail it with the cause once in-flight requests settle.
        this.#fatal ??= err;
        this.stop('shutdown');
      })
      .finally(() => {
        this.#ctx.slots.release(this.batchId);
        this.#inFlight--;
        if (this.#inFlight === 0) for (const w of this.#idleWaiters.splice(0)) w();
      });
  }

  #settled(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Sends one request and appends its result; resolves once the line is in the file. */
  async #dispatch(req: LineRequest): Promise<void> {
    const { events } = this.#ctx;
    const started = performance.now();
    const r = await sendRequest(this.#send, req);
    if (r.kind === 'abandoned') {
      this.#abandoned.push(req.customId);
      return;
    }
    const file = r.kind === 'output' ? this.#out! : this.#err!;
    file.append(r.line);
    if (r.kind === 'output') {
      this.#counts.completed++;
      if (r.usage) addUsage(this.#usage, r.usage);
    } else {
      this.#counts.failed++;
    }
    this.#dirty = true;
    if (events.listenerCount('request:done') > 0) {
      const ok = r.kind === 'output';
      events.safeEmit('request:done', { batchId: this.batchId, project: this.project, ok, status: r.status, attempts: r.attempts, latencyMs: performance.now() - started, usage: ok ? r.usage : null });
    }
    await file.written(); // the caller releases the slot only now: see ResultWriter
  }

  async #flushProgress(): Promise<void> {
    if (!this.#dirty) return;
    this.#dirty = false;
    try {
      await this.#ctx.store.saveProgress(this.batchId, this.#counts, this.#usage);
      this.#ctx.events.safeEmit('batch:progress', { batchId: this.batchId, project: this.project, counts: this.counts, usage: this.usage, inFlight: this.#inFlight });
    } catch (err) {
      this.#dirty = true;
      this.#ctx.log.warn({ err, batchId: this.batchId }, 'could not save progress');
    }
  }

  async #finish(batch: BatchRecord, inputKey: string, done: Set<string>): Promise<void> {
    switch (this.#stopReason) {
      case 'shutdown':
      case 'delete':
        if (this.#stopReason === 'shutdown') await this.#ctx.store.saveProgress(this.batchId, this.#counts, this.#usage);
        return;
      case 'cancel':
        await this.#writeUnsent(inputKey, done, 'batch_cancelled', 'This request was not executed because the batch was cancelled.');
        await this.#complete(['cancelling'], 'cancelled');
        return;
      case 'expire':
        await this.#writeUnsent(inputKey, done, 'batch_expired', 'This request could not be executed before the completion window expired.');
        await this.#complete(['in_progress', 'finalizing', 'cancelling'], 'expired');
        return;
      case null:
        if (batch.status !== 'finalizing') await this.#transition(['in_progress'], 'finalizing', { requestCounts: this.#counts, usage: this.#usage });
        await this.#complete(['finalizing'], 'completed');
        return;
    }
  }

  /** Lines never sent (after the last started line, or abandoned mid-flight) go to the error file. */
  async #writeUnsent(inputKey: string, done: Set<string>, code: string, message: string): Promise<void> {
    const err = this.#err!;
    for (const customId of this.#abandoned.splice(0)) {
      err.append(errorLine(newBatchRequestId(), customId, code, message));
      this.#counts.failed++;
    }
    const stream = this.#ctx.blobs.openRead(inputKey);
    try {
      for await (const raw of readLines(stream, { maxLineBytes: this.#ctx.opts.maxLineBytes })) {
        if (raw.line <= this.#lastStartedLine || isBlankLine(raw.text)) continue;
        const { customId } = parseRequest(raw.text);
        if (done.has(customId)) continue;
        err.append(errorLine(newBatchRequestId(), customId, code, message));
        this.#counts.failed++;
      }
    } finally {
      stream.destroy();
    }
  }

  /** Closes the result files and records them with the terminal status in one store write. */
  async #complete(from: readonly BatchStatus[], to: BatchStatus): Promise<void> {
    await this.#out!.close();
    await this.#err!.close();
    const now = nowSeconds();
    const files: FileRecord[] = [];
    const make = (key: string, suffix: string, writer: ResultWriter): string | null => {
      if (writer.lines === 0) return null;
      const f: FileRecord = {
        id: newFileId(),
        filename: `${this.batchId}_${suffix}.jsonl`,
        purpose: 'batch_output',
        bytes: writer.bytes,
        createdAt: now,
        expiresAt: this.#outputExpiresAfter === null ? null : now + this.#outputExpiresAfter,
        blobKey: key,
        batchId: this.batchId,
        project: this.project,
        lines: writer.lines,
      };
      files.push(f);
      return f.id;
    };
    const outputFileId = make(outputKey(this.batchId), 'output', this.#out!);
    const errorFileId = make(errorKey(this.batchId), 'error', this.#err!);
    const fields = { outputFileId, errorFileId, insertFiles: files, requestCounts: this.#counts, usage: this.#usage };
    if (await this.#transition(from, to, fields)) return;
    // Cancelled while finalizing: every line is done, so it ends cancelled with the full results.
    const current = await this.#ctx.store.getBatch(this.batchId);
    if (current?.status === 'cancelling') await this.#transition(['cancelling'], 'cancelled', fields);
  }

  async #transition(
    from: readonly BatchStatus[],
    to: BatchStatus,
    fields: Parameters<EngineContext['store']['transition']>[4],
  ): Promise<BatchRecord | null> {
    const b = await this.#ctx.store.transition(this.batchId, from, to, nowSeconds(), fields);
    if (b) {
      this.#ctx.log.info({ batchId: b.id, status: b.status, requestCounts: b.requestCounts }, `batch ${b.status}`);
      this.#ctx.events.safeEmit('batch:status', b);
    }
    return b;
  }

  async #failUnexpectedly(err: unknown): Promise<void> {
    if (this.#stopReason === 'delete' || (this.#stopReason === 'shutdown' && this.#fatal === null)) return;
    const message = err instanceof Error ? err.message : String(err);
    await this.#transition(['validating', 'in_progress', 'finalizing', 'cancelling'], 'failed', {
      errors: [{ code: 'internal_error', message: `The batch could not be processed: ${message}`, param: null, line: null }],
      requestCounts: this.#counts,
      usage: this.#usage,
    });
  }
}

/** Lines were validated before the batch started, so the shape is known. */
function parseRequest(text: string): LineRequest {
  const o = JSON.parse(text) as { custom_id: string; url: string; body: unknown };
  return { customId: o.custom_id, url: o.url, body: JSON.stringify(o.body) };
}
