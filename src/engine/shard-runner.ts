import { performance } from 'node:perf_hooks';

import { coerceError, newBatchRequestId, nowSeconds, type Usage } from '../domain/index.js';
import { addUsage, errorLine, isBlankLine, readLines } from '../jsonl/index.js';
import { groupedInputKey } from '../store/blob-keys.js';
import type { ShardFence, ShardLease, ShardOutcome } from '../store/meta-store.js';
import { prefixKeyOf } from '../upstream/prefix-key.js';
import { setLongTimeout } from './abortable-sleep.js';
import { failBatch } from './batch-verbs.js';
import { deadlineBand } from './deadline-band.js';
import type { EngineContext } from './engine-context.js';
import { type LeaseEntry, type LocalTask, STOP_PRIORITY, type StopReason } from './local-task.js';
import { scanShardResults } from './resume-scan.js';
import { type LineRequest, type SendContext, sendRequest } from './send-request.js';
import { LeaseLostError, ResultWriteError, ShardResults } from './shard-results.js';

/** A fault no retry of the shard can fix: its results cannot be written, or its input is gone. The batch fails. */
class ShardFault extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ShardFault';
  }
}

export interface ShardRunnerHooks {
  /** Every line of the shard has been handed to a request: only its tail is in flight. */
  onTail(): void;
  /** The shard is done and it was the batch's last: the batch can be finalized. */
  onLastShard(batchId: string): void;
}

/**
 * Runs one shard of a batch (a range of its input) under a shard lease, from where its results
 * say it is to done (or until stopped).
 *
 * Phases:
 *   resuming   read the shard's registered segments (every earlier lease's): their custom_ids
 *              are done and never sent again; counters and usage are recounted from them
 *   running    stream the shard's byte range; for each line not done: take a fair slot, send
 *              upstream with retries, append the result (the slot is held until the line is as
 *              durable as the blob store makes an append)
 *   settling   input exhausted or stop requested: wait for in-flight requests
 *   finishing  seal the segments and give the shard back: done (completed, or with the lines
 *              never sent written as batch_cancelled / batch_expired), or pending again on
 *              shutdown; nothing at all after lease_lost or delete (see StopReason)
 */
export class ShardRunner implements LocalTask {
  readonly kind = 'shard';
  readonly batchId: string;
  readonly project: string;
  readonly shardNo: number;
  readonly done: Promise<void>;
  readonly #ctx: EngineContext;
  readonly #lease: ShardLease;
  readonly #fence: ShardFence;
  readonly #hooks: ShardRunnerHooks;
  #completed: number;
  #failed: number;
  #usage: Usage;
  #inFlight = 0;
  #stopReason: StopReason | null = null;
  /** Aborts waiting for slots and retry backoffs: no new attempt starts. */
  readonly #stopTaking = new AbortController();
  /** Aborts requests already sent upstream. */
  readonly #abortRequests = new AbortController();
  #graceTimer: NodeJS.Timeout | null = null;
  #idleWaiters: Array<() => void> = [];
  /** Custom ids whose request was aborted before a result was written. */
  readonly #abandoned: string[] = [];
  /** Highest input line handed to a request; later lines of the shard were never sent. */
  #lastStartedLine = 0;
  #tail = false;
  #results: ShardResults | null = null;
  /** The first error that kept a result from being written; the batch fails with it. */
  #fatal: unknown = null;
  /** The first other error of a request's result (a store call): the shard stops and resumes later. */
  #interrupted: unknown = null;
  readonly #send: SendContext;

  constructor(ctx: EngineContext, lease: ShardLease, hooks: ShardRunnerHooks) {
    this.#ctx = ctx;
    this.#lease = lease;
    this.#hooks = hooks;
    this.batchId = lease.batchId;
    this.project = lease.batch.project;
    this.shardNo = lease.shardNo;
    this.#fence = { batchId: lease.batchId, shardNo: lease.shardNo, owner: ctx.replica.id, epoch: lease.epoch };
    this.#completed = lease.completed;
    this.#failed = lease.failed;
    this.#usage = { ...lease.usage };
    this.#send = {
      batchId: this.batchId,
      project: this.project,
      model: lease.batch.model,
      priorityDeadline: ctx.opts.sendPriority ? lease.batch.expiresAt : null,
      upstream: ctx.upstream,
      retry: ctx.opts.retry,
      events: ctx.events,
      abortRequests: this.#abortRequests.signal,
      stopTaking: this.#stopTaking.signal,
    };
    this.done = this.#run();
  }

  /**
   * Half the shard sent, or fewer lines left than twice this replica's worker slots: the engine may
   * start the batch's next shard now, so that its start (a claim, a resume scan, the first bytes
   * of its range, round trips to PostgreSQL and S3 in a cluster) overlaps the end of this one and
   * no slot idles in between. A batch thus has at most two shards running per replica.
   */
  get tail(): boolean {
    return this.#tail;
  }

  lease(): LeaseEntry {
    return { kind: 'shard', fence: this.#fence, progress: { completed: this.#completed, failed: this.#failed, usage: { ...this.#usage }, inFlight: this.#inFlight } };
  }

  stop(reason: StopReason): void {
    if (this.#stopReason && STOP_PRIORITY[this.#stopReason] >= STOP_PRIORITY[reason]) return;
    this.#stopReason = reason;
    if (!this.#stopTaking.signal.aborted) this.#stopTaking.abort(new Error(`shard ${reason}`));
    if (reason === 'expire' || reason === 'delete' || reason === 'lease_lost') {
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

  /** Never rejects: unexpected faults fail the batch with a clear error. */
  async #run(): Promise<void> {
    const { store, log } = this.#ctx;
    const batch = this.#lease.batch;
    const expiry = setLongTimeout(() => this.stop('expire'), batch.expiresAt * 1000 - Date.now());
    try {
      const input = await store.getFile(batch.inputFileId);
      if (!input) throw new ShardFault(`input file ${batch.inputFileId} of batch ${batch.id} is missing`);
      // The shards are ranges of the input, or of validation's copy of it grouped by prompt prefix.
      const inputKey = batch.inputOrder === 'prefix' ? groupedInputKey(batch.id) : input.blobKey;
      const resume = await scanShardResults(this.#ctx, this.#fence);
      this.#completed = resume.completed;
      this.#failed = resume.failed;
      this.#usage = resume.usage;
      this.#results = await ShardResults.open(this.#ctx, this.#fence);
      if (batch.status === 'cancelling') this.stop('cancel');
      if (batch.expiresAt <= nowSeconds()) this.stop('expire');
      if (this.#stopReason === null) await this.#sendAll(inputKey, resume.done);
      if (!this.#tail && this.#stopReason === null) {
        this.#tail = true;
        this.#hooks.onTail();
      }
      await this.#settled();
      if (this.#graceTimer) clearTimeout(this.#graceTimer);
      if (this.#fatal !== null) throw new ShardFault(coerceError(this.#fatal).message, this.#fatal);
      if (this.#interrupted !== null) throw coerceError(this.#interrupted);
      await this.#finish(inputKey, resume.done);
    } catch (err) {
      await this.#fail(err).catch((e: unknown) => log.error({ err: e, batchId: this.batchId }, 'could not settle a failed shard'));
    } finally {
      expiry.clear();
      if (this.#graceTimer) clearTimeout(this.#graceTimer);
      this.#tail = true;
    }
  }

  async #sendAll(inputKey: string, done: Set<string>): Promise<void> {
    const { slots } = this.#ctx;
    let seen = 0;
    for await (const raw of this.#lines(inputKey)) {
      if (this.#stopReason) break;
      if (isBlankLine(raw.text)) continue;
      if (!this.#tail && this.#lease.requests - ++seen < Math.max(2 * slots.capacity, this.#lease.requests / 2)) {
        this.#tail = true;
        this.#hooks.onTail();
      }
      const req = parseRequest(raw.text);
      if (done.has(req.customId)) continue;
      if (this.#ctx.opts.prefixAffinity) req.prefixKey = prefixKeyOf(req.body, { url: req.url }) ?? undefined;
      try {
        await slots.acquire(this.batchId, this.#stopTaking.signal, this.project, deadlineBand(this.#lease.batch.expiresAt, nowSeconds()));
      } catch {
        break; // stop requested while waiting for a slot
      }
      this.#lastStartedLine = raw.line;
      this.#launch(req);
    }
  }

  /** The shard's lines, numbered as in the whole input file. */
  async *#lines(inputKey: string): AsyncGenerator<{ line: number; text: string }> {
    const { startByte, endByte, firstLine } = this.#lease;
    if (endByte <= startByte) return;
    const stream = this.#ctx.blobs.openRead(inputKey, { start: startByte, end: endByte - 1 });
    try {
      for await (const raw of readLines(stream, { maxLineBytes: this.#ctx.opts.maxLineBytes })) {
        yield { line: firstLine - 1 + raw.line, text: raw.text };
      }
    } finally {
      stream.destroy();
    }
  }

  #launch(req: LineRequest): void {
    this.#inFlight++;
    void this.#dispatch(req)
      .catch((err: unknown) => {
        if (err instanceof LeaseLostError) {
          this.stop('lease_lost');
          return;
        }
        // A result that cannot be written (disk full, I/O error) must not vanish: stop the shard
        // and fail the batch with the cause once in-flight requests settle. Anything else (the
        // store failing for a moment while a segment was registered) stops only this shard.
        if (err instanceof ResultWriteError) this.#fatal ??= err;
        else this.#interrupted ??= err;
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

  /** Sends one request and appends its result; resolves once the line is as durable as an append gets. */
  async #dispatch(req: LineRequest): Promise<void> {
    const { events } = this.#ctx;
    const started = performance.now();
    const r = await sendRequest(this.#send, req);
    if (r.kind === 'abandoned' || this.#stopReason === 'lease_lost' || this.#stopReason === 'delete') {
      this.#abandoned.push(req.customId);
      return;
    }
    const kind = r.kind === 'output' ? 'output' : 'error';
    this.#results!.append(kind, r.line);
    if (r.kind === 'output') {
      this.#completed++;
      if (r.usage) addUsage(this.#usage, r.usage);
    } else {
      this.#failed++;
    }
    if (events.listenerCount('request:done') > 0) {
      const ok = r.kind === 'output';
      events.safeEmit('request:done', { batchId: this.batchId, project: this.project, ok, status: r.status, attempts: r.attempts, latencyMs: performance.now() - started, usage: ok ? r.usage : null });
    }
    await this.#results!.written(kind); // the caller releases the slot only now
  }

  async #finish(inputKey: string, done: Set<string>): Promise<void> {
    const results = this.#results!;
    const seal = (): Promise<void> =>
      results.seal().catch((err: unknown) => {
        throw err instanceof ResultWriteError ? new ShardFault(err.message, err) : err;
      });
    switch (this.#stopReason) {
      case 'lease_lost':
        await results.discard();
        return;
      case 'delete':
        await results.discard();
        await this.#release(null);
        return;
      case 'shutdown':
        await seal();
        await this.#release(null);
        return;
      case 'cancel':
        await this.#writeUnsent(inputKey, done, 'batch_cancelled', 'This request was not executed because the batch was cancelled.');
        await seal();
        await this.#release('cancelled');
        return;
      case 'expire':
        await this.#writeUnsent(inputKey, done, 'batch_expired', 'This request could not be executed before the completion window expired.');
        await seal();
        await this.#release('expired');
        return;
      case null:
        await seal();
        await this.#release('completed');
        return;
    }
  }

  /** Gives the shard back (done with `outcome`, or pending again); tells the engine when it was the last. */
  async #release(outcome: ShardOutcome | null): Promise<void> {
    const { held, remaining } = await this.#ctx.store.releaseShard({ ...this.#fence, completed: this.#completed, failed: this.#failed, usage: this.#usage, outcome });
    if (!held) {
      this.#ctx.log.warn({ batchId: this.batchId, shard: this.shardNo, epoch: this.#fence.epoch }, 'shard lease was taken over before the shard was given back');
      return;
    }
    this.#ctx.events.safeEmit('shard:released', { batchId: this.batchId, project: this.project, shardNo: this.shardNo, done: outcome !== null });
    if (outcome !== null && remaining === 0) this.#hooks.onLastShard(this.batchId);
  }

  /** Lines of the shard never sent (after the last started line, or abandoned mid-flight) go to the error file. */
  async #writeUnsent(inputKey: string, done: Set<string>, code: string, message: string): Promise<void> {
    const results = this.#results!;
    const write = (customId: string): void => {
      results.append('error', errorLine(newBatchRequestId(), customId, code, message));
      this.#failed++;
    };
    for (const customId of this.#abandoned.splice(0)) write(customId);
    for await (const raw of this.#lines(inputKey)) {
      if (raw.line <= this.#lastStartedLine || isBlankLine(raw.text)) continue;
      const { customId } = parseRequest(raw.text);
      if (!done.has(customId)) write(customId);
    }
  }

  /**
   * After an error: a lost lease writes nothing more; a ShardFault (results that cannot be
   * written, the input gone) fails the batch; anything else (the store or a read failing for a
   * moment) only stops this shard — what is durable stays, the shard is given back (or its lease
   * expires) and is resumed from its segments, here or on another replica.
   */
  async #fail(err: unknown): Promise<void> {
    const { log } = this.#ctx;
    if (err instanceof LeaseLostError || this.#stopReason === 'lease_lost') {
      log.warn({ batchId: this.batchId, shard: this.shardNo, epoch: this.#fence.epoch }, 'shard lease lost: stopped, wrote nothing more');
      await this.#results?.discard();
      return;
    }
    if (this.#stopReason === 'delete') {
      await this.#results?.discard();
      await this.#release(null).catch(() => undefined);
      return;
    }
    if (!(err instanceof ShardFault)) {
      log.warn({ err, batchId: this.batchId, shard: this.shardNo }, 'shard stopped by an error; it resumes from its results');
      await this.#results?.seal().catch(() => this.#results?.discard());
      await this.#release(null).catch(() => undefined);
      return;
    }
    await this.#results?.discard();
    log.error({ err, batchId: this.batchId, shard: this.shardNo }, 'shard failed');
    await failBatch(this.#ctx, this.batchId, err);
    await this.#release(null).catch(() => undefined);
  }
}

/** Lines were validated before the batch started, so the shape is known. */
function parseRequest(text: string): LineRequest {
  const o = JSON.parse(text) as { custom_id: string; url: string; body: unknown };
  return { customId: o.custom_id, url: o.url, body: JSON.stringify(o.body) };
}
