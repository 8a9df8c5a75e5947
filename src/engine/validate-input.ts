import type { BatchError } from '../domain/index.js';
import { FingerprintSet, isBlankLine, JsonlError, MAX_CUSTOM_ID_LENGTH, readLines, validateRequestLine } from '../jsonl/index.js';
import type { ShardPlan } from '../store/meta-store.js';
import { prefixKeyOfLine } from '../upstream/prefix-key.js';
import type { EngineContext } from './engine-context.js';
import { PrefixPlan } from './prefix-plan.js';
import { CustomIdIndexBuilder } from './result-index.js';

export interface ValidationResult {
  total: number;
  /** The one model every line names, or null when lines name several. */
  model: string | null;
  errors: BatchError[];
  /** The input cut into shards of `shardSize` request lines (the last one shorter): fixed-size entries, never the lines. */
  shards: ShardPlan[];
  /** The custom_id of every request, for the custom_id index (engine/result-index.ts), when the input is valid. */
  customIds: CustomIdIndexBuilder | null;
  /** Every request's prefix, for grouping the lines by it (engine/prefix-plan.ts), when asked for and the input is valid. */
  prefixes: PrefixPlan | null;
}

/** Below this, a batch is not cut finer to spread it over replicas: a shard costs a claim and its segments. */
const MIN_SHARD_LINES = 100;
/**
 * A batch large enough is cut into at least this many shards per live replica, so that the
 * replicas end it together (the last shard of one is short next to the run), while each shard's
 * fixed cost (a claim, round trips, its segments in the store and the bucket) stays small.
 */
const SHARDS_PER_REPLICA = 16;

/** Request lines per shard for a file of `requests` lines (unknown: the most allowed), on `replicas` live replicas. */
export function shardSize(requests: number | null, maxShardLines: number, replicas = 1): number {
  if (requests === null) return maxShardLines;
  const target = SHARDS_PER_REPLICA * Math.max(1, replicas);
  return Math.max(1, Math.min(maxShardLines, Math.max(MIN_SHARD_LINES, Math.ceil(requests / target))));
}

/**
 * Reads the whole input once and checks every line (JSON, custom_id present and unique, POST,
 * url = endpoint, body with model, no streaming, a model some upstream serves when the upstreams'
 * models are known). Collects at most maxValidationErrors errors.
 * Uniqueness is checked on 64-bit fingerprints to keep memory flat for million-line files; the
 * rare duplicate they report is confirmed exactly by a second pass over the suspect ids.
 */
export async function validateInput(ctx: EngineContext, blobKey: string, endpoint: string, signal: AbortSignal, linesPerShard: number, expectedRequests: number | null = null): Promise<ValidationResult> {
  const { opts } = ctx;
  const errors: BatchError[] = [];
  const vctx = { endpoint, seenCustomIds: new FingerprintSet(), maxCustomIdLength: MAX_CUSTOM_ID_LENGTH };
  const suspects = new Map<BatchError, string>();
  let total = 0;
  let model: string | null | undefined;
  let lastLine = 0;
  let endOfInput = 0;
  const shards: ShardPlan[] = [];
  const index = new CustomIdIndexBuilder(expectedRequests, opts.maxRequestsPerBatch);
  const prefixes = opts.prefixOrder ? new PrefixPlan(Math.min(expectedRequests ?? 1024, opts.maxRequestsPerBatch)) : null;
  // Checked only when at least one upstream answered GET /v1/models (see UpstreamPool.models).
  const served = ctx.upstream.models();
  const stream = ctx.blobs.openRead(blobKey);
  try {
    for await (const raw of readLines(stream, { maxLineBytes: opts.maxLineBytes })) {
      signal.throwIfAborted();
      lastLine = raw.line;
      endOfInput = raw.byteOffset + raw.byteLength;
      if (isBlankLine(raw.text)) continue; // trailing blank lines; middle ones are refused at upload
      if (total % linesPerShard === 0) {
        const last = shards.at(-1);
        if (last) last.endByte = raw.byteOffset;
        shards.push({ shardNo: shards.length, firstLine: raw.line, requests: 0, startByte: raw.byteOffset, endByte: raw.byteOffset });
      }
      shards.at(-1)!.requests++;
      total++;
      const r = validateRequestLine(raw.text, raw.line, vctx);
      if (!r.ok) {
        if (errors.length < opts.maxValidationErrors) {
          for (const e of r.errors) {
            errors.push(e);
            if (e.code === 'duplicate_custom_id') suspects.set(e, customIdOf(raw.text));
          }
        }
        continue;
      }
      index.add(total - 1, r.request.customId);
      if (prefixes?.tracking) prefixes.add(Buffer.byteLength(raw.text) + 1, prefixKeyOfLine(raw.text, r.request.url));
      if (served !== null && !served.has(r.request.model)) {
        if (errors.length < opts.maxValidationErrors) {
          errors.push({
            code: 'model_not_found',
            message: `The model '${r.request.model}' is not served by any upstream (served: ${[...served].sort().join(', ') || 'none'}).`,
            param: 'body.model',
            line: raw.line,
          });
        }
        continue;
      }
      if (model === undefined) model = r.request.model;
      else if (model !== r.request.model) model = null;
    }
  } catch (err) {
    if (!(err instanceof JsonlError)) throw err;
    errors.push({ code: err.code, message: err.message, param: null, line: err.line ?? lastLine + 1 });
  } finally {
    stream.destroy();
  }
  if (suspects.size > 0) {
    const real = await confirmDuplicates(ctx, blobKey, new Set(suspects.values()), signal);
    for (const [e, id] of suspects) if (!real.has(id)) errors.splice(errors.indexOf(e), 1);
  }
  if (errors.length === 0 && total === 0) {
    errors.push({ code: 'empty_file', message: 'The input file contains no requests.', param: 'input_file_id', line: null });
  }
  if (total > opts.maxRequestsPerBatch) {
    errors.push({
      code: 'too_many_requests',
      message: `The input file has ${total} requests; this server accepts at most ${opts.maxRequestsPerBatch} per batch (BESH_MAX_REQUESTS_PER_BATCH).`,
      param: 'input_file_id',
      line: null,
    });
  }
  const last = shards.at(-1);
  if (last) last.endByte = endOfInput;
  const valid = errors.length === 0;
  return { total, model: model ?? null, errors: errors.slice(0, opts.maxValidationErrors), shards, customIds: valid ? index : null, prefixes: valid ? prefixes : null };
}

/** Exact count of the suspect custom_ids; returns those that really occur more than once. */
async function confirmDuplicates(ctx: EngineContext, blobKey: string, ids: Set<string>, signal: AbortSignal): Promise<Set<string>> {
  const seen = new Set<string>();
  const dup = new Set<string>();
  const stream = ctx.blobs.openRead(blobKey);
  try {
    for await (const raw of readLines(stream, { maxLineBytes: ctx.opts.maxLineBytes })) {
      signal.throwIfAborted();
      const id = customIdOf(raw.text);
      if (!ids.has(id)) continue;
      if (seen.has(id)) dup.add(id);
      else seen.add(id);
    }
  } finally {
    stream.destroy();
  }
  return dup;
}

function customIdOf(text: string): string {
  try {
    const o = JSON.parse(text) as { custom_id?: unknown };
    return typeof o.custom_id === 'string' ? o.custom_id : '';
  } catch {
    return '';
  }
}
