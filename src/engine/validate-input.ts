import type { BatchError } from '../domain/index.js';
import { JsonlError, MAX_CUSTOM_ID_LENGTH, readLines, validateRequestLine } from '../jsonl/index.js';
import type { EngineContext } from './engine-context.js';

export interface ValidationResult {
  total: number;
  /** The one model every line names, or null when lines name several. */
  model: string | null;
  errors: BatchError[];
}

/**
 * Reads the whole input once and checks every line (JSON, custom_id present and unique, POST,
 * url = endpoint, body with model, no streaming). Collects at most maxValidationErrors errors.
 */
export async function validateInput(ctx: EngineContext, blobKey: string, endpoint: string, signal: AbortSignal): Promise<ValidationResult> {
  const { opts } = ctx;
  const errors: BatchError[] = [];
  const seen = new Set<string>();
  const vctx = { endpoint, seenCustomIds: seen, maxCustomIdLength: MAX_CUSTOM_ID_LENGTH };
  let total = 0;
  let model: string | null | undefined;
  let lastLine = 0;
  const push = (e: BatchError): boolean => {
    errors.push(e);
    return errors.length >= opts.maxValidationErrors;
  };
  const stream = ctx.blobs.openRead(blobKey);
  try {
    for await (const raw of readLines(stream, { maxLineBytes: opts.maxLineBytes })) {
      signal.throwIfAborted();
      lastLine = raw.line;
      if (raw.text.trim() === '') continue; // trailing blank lines; middle ones are refused at upload
      total++;
      const r = validateRequestLine(raw.text, raw.line, vctx);
      if (!r.ok) {
        if (r.errors.some(push)) break;
        continue;
      }
      if (model === undefined) model = r.request.model;
      else if (model !== r.request.model) model = null;
    }
  } catch (err) {
    if (!(err instanceof JsonlError)) throw err;
    push({ code: err.code, message: err.message, param: null, line: err.line ?? lastLine + 1 });
  } finally {
    stream.destroy();
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
  return { total, model: model ?? null, errors };
}
