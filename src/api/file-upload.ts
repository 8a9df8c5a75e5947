import { pipeline } from 'node:stream/promises';

import type { FastifyRequest } from 'fastify';

import {
  type FileRecord,
  InsufficientStorageError,
  InvalidRequestError,
  newFileId,
  nowSeconds,
  PayloadTooLargeError,
  UPLOAD_PURPOSES,
} from '../domain/index.js';
import { decodeInput, JsonlError, UploadChecker } from '../jsonl/index.js';
import { inputFileKey } from '../store/blob-keys.js';
import type { BlobStore, BlobUpload } from '../store/blob-store.js';
import type { StorageFloor } from './disk-space.js';

export interface UploadLimits {
  maxFileBytes: number;
  maxLineBytes: number;
  /** Lifetime of a file uploaded without `expires_after` (null = kept until deleted). */
  defaultTtlSeconds: number | null;
  /** Free-space floor of the data directory; null = unchecked. */
  floor: StorageFloor | null;
}

/** OpenAI's bounds for `expires_after[seconds]`: 1 hour to 30 days. */
const MIN_EXPIRES_AFTER = 3600;
const MAX_EXPIRES_AFTER = 2_592_000;
const EXPIRES_ANCHOR = 'expires_after[anchor]';
const EXPIRES_SECONDS = 'expires_after[seconds]';

/**
 * Streams a multipart upload (`file` + `purpose`, in any order) to the blob store: gzip is
 * decoded, every line is checked to be a JSON object, nothing is held in memory whole. On any
 * error the partial blob is removed and nothing is recorded.
 */
export async function receiveUpload(req: FastifyRequest, blobs: BlobStore, limits: UploadLimits): Promise<Omit<FileRecord, 'project'>> {
  if (!req.isMultipart()) {
    throw new InvalidRequestError("Expected a multipart/form-data body with a 'file' and a 'purpose'.", { code: 'invalid_content_type' });
  }
  const id = newFileId();
  const blobKey = inputFileKey(id);
  let upload: BlobUpload | null = null;
  let purpose: string | undefined;
  let filename: string | undefined;
  let bytes = 0;
  let lines = 0;
  const expiresAfter: { anchor?: string; seconds?: string } = {};
  try {
    if (limits.floor) {
      // Refuse before reading a byte when the announced body would already cross the floor.
      const announced = Number(req.headers['content-length'] ?? 0);
      await limits.floor.assertRoom(Number.isFinite(announced) && announced > 0 ? announced : 0);
    }
    for await (const part of req.parts()) {
      if (part.type === 'field') {
        const value = typeof part.value === 'string' ? part.value : undefined;
        if (part.fieldname === 'purpose') purpose = value;
        else if (part.fieldname === EXPIRES_ANCHOR) expiresAfter.anchor = value ?? '';
        else if (part.fieldname === EXPIRES_SECONDS) expiresAfter.seconds = value ?? '';
        continue;
      }
      if (part.fieldname !== 'file' || upload) {
        part.file.resume();
        throw new InvalidRequestError(
          part.fieldname === 'file' ? 'Send exactly one file per upload.' : `Unexpected file field '${safe(part.fieldname)}'; the file goes in 'file'.`,
          { param: 'file' },
        );
      }
      filename = cleanFilename(part.filename);
      upload = blobs.createUpload(blobKey);
      const checker = new UploadChecker({ maxLineBytes: limits.maxLineBytes, requireJson: true });
      const decoded = decodeInput(part.file, { maxDecompressedBytes: limits.maxFileBytes });
      // Past the limit busboy stops passing data but only ends the part with the body: fail now,
      // so the 413 goes out while the client is still sending.
      part.file.once('limit', () => decoded.destroy(tooLarge(limits.maxFileBytes)));
      try {
        if (limits.floor) await pipeline(decoded, checker, limits.floor.guard(), upload.stream);
        else await pipeline(decoded, checker, upload.stream);
      } catch (err) {
        if (part.file.truncated) throw tooLarge(limits.maxFileBytes);
        if (err instanceof InsufficientStorageError) {
          part.file.resume(); // discard the rest unread so the client gets our answer, not a reset
          throw err;
        }
        if (err instanceof JsonlError) {
          part.file.resume(); // read the rest so the client gets our answer, not a reset
          throw uploadError(err, limits);
        }
        throw err;
      }
      if (part.file.truncated) throw tooLarge(limits.maxFileBytes);
      bytes = checker.bytes;
      lines = checker.lines;
    }
    if (!upload || filename === undefined) throw new InvalidRequestError("Missing required parameter: 'file'.", { param: 'file', code: 'missing_required_parameter' });
    if (purpose === undefined) throw new InvalidRequestError("Missing required parameter: 'purpose'.", { param: 'purpose', code: 'missing_required_parameter' });
    if (purpose !== 'batch') {
      const known = (UPLOAD_PURPOSES as readonly string[]).includes(purpose);
      throw new InvalidRequestError(
        known
          ? `BESH stores files for the Batch API only: purpose must be 'batch', got '${safe(purpose)}'.`
          : `Invalid value for 'purpose': '${safe(purpose)}'. Supported values are: 'batch'.`,
        { param: 'purpose', code: 'invalid_value' },
      );
    }
    if (!/\.jsonl$/i.test(filename)) {
      throw new InvalidRequestError('Invalid file format for Batch API. Must be .jsonl', { param: 'file', code: 'invalid_file_format' });
    }
    const ttl = parseExpiresAfter(expiresAfter, limits.defaultTtlSeconds);
    await upload.commit();
    const now = nowSeconds();
    return { id, filename, purpose: 'batch', bytes, createdAt: now, expiresAt: ttl === null ? null : now + ttl, blobKey, batchId: null, lines };
  } catch (err) {
    discardRestOfBody(req);
    await upload?.abort();
    const code = (err as { code?: unknown }).code;
    if (code === 'FST_REQ_FILE_TOO_LARGE') throw tooLarge(limits.maxFileBytes);
    throw multipartClientError(err) ?? err;
  }
}

/**
 * After a refused upload, reads and drops the rest of the body straight off the request, past
 * busboy: a file stream destroyed by a failed pipeline stalls busboy, which would leave the
 * keep-alive connection stuck on an unread body and the client's next request unanswered.
 */
export function discardRestOfBody(req: FastifyRequest): void {
  const raw = req.raw;
  if (raw.readableEnded || raw.destroyed) return;
  raw.unpipe();
  raw.resume();
}

/**
 * OpenAI's `expires_after[anchor]=created_at` + `expires_after[seconds]=3600..2592000` form
 * fields (the SDKs flatten the object with brackets). Both or neither; returns the file's
 * lifetime in seconds, or the default when neither is sent.
 */
export function parseExpiresAfter(f: { anchor?: string; seconds?: string }, fallback: number | null): number | null {
  if (f.anchor === undefined && f.seconds === undefined) return fallback;
  if (f.anchor === undefined) throw new InvalidRequestError(`Missing required parameter: '${EXPIRES_ANCHOR}'.`, { param: EXPIRES_ANCHOR, code: 'missing_required_parameter' });
  if (f.seconds === undefined) throw new InvalidRequestError(`Missing required parameter: '${EXPIRES_SECONDS}'.`, { param: EXPIRES_SECONDS, code: 'missing_required_parameter' });
  if (f.anchor !== 'created_at') {
    throw new InvalidRequestError(`Invalid value for '${EXPIRES_ANCHOR}': '${safe(f.anchor)}'. Supported values are: 'created_at'.`, { param: EXPIRES_ANCHOR, code: 'invalid_value' });
  }
  const seconds = /^\d{1,10}$/.test(f.seconds.trim()) ? Number(f.seconds.trim()) : NaN;
  if (!(seconds >= MIN_EXPIRES_AFTER && seconds <= MAX_EXPIRES_AFTER)) {
    throw new InvalidRequestError(
      `Invalid value for '${EXPIRES_SECONDS}': '${safe(f.seconds)}'. Expected an integer between ${MIN_EXPIRES_AFTER} (1 hour) and ${MAX_EXPIRES_AFTER} (30 days).`,
      { param: EXPIRES_SECONDS, code: 'invalid_value' },
    );
  }
  return seconds;
}

const MALFORMED_MULTIPART = /multipart|boundary|needle|terminated early|Unsupported Content-Type/i;

/**
 * A 400 for a multipart body the client got wrong: the parser's limits (more than one file, too
 * many fields), and a body that is malformed or ends early (busboy raises plain Errors, and the
 * file part it destroys surfaces as a premature close). Null for anything else (disk errors
 * stay 5xx).
 */
export function multipartClientError(err: unknown): InvalidRequestError | null {
  if (!(err instanceof Error)) return null;
  const code = (err as { code?: unknown }).code;
  if (code === 'FST_FILES_LIMIT') return new InvalidRequestError('Send exactly one file per upload.', { param: 'file' });
  if (code === 'FST_FIELDS_LIMIT' || code === 'FST_PARTS_LIMIT') {
    return new InvalidRequestError("Too many form fields: send a 'file' and a 'purpose'.", { code: 'too_many_fields' });
  }
  const plainBusboyError = err.constructor === Error && code === undefined && MALFORMED_MULTIPART.test(err.message);
  if (code === 'ERR_STREAM_PREMATURE_CLOSE' || plainBusboyError) {
    return new InvalidRequestError('The multipart/form-data body is malformed or ended early.', { param: 'file', code: 'invalid_multipart' });
  }
  return null;
}

/** The answer to a line the checker refused (shared with the Uploads API's completion, so both say the same). */
export function uploadError(err: JsonlError, limits: Pick<UploadLimits, 'maxFileBytes' | 'maxLineBytes'>): Error {
  switch (err.code) {
    case 'decompressed_too_large':
      return tooLarge(limits.maxFileBytes);
    case 'line_too_long':
      return new InvalidRequestError(`Line ${err.line} is longer than the ${limits.maxLineBytes}-byte limit.`, { param: 'file', code: err.code });
    default:
      return new InvalidRequestError(err.message, { param: 'file', code: err.code });
  }
}

const tooLarge = (max: number): PayloadTooLargeError =>
  new PayloadTooLargeError(`The file is larger than the ${max}-byte limit (BESH_MAX_FILE_BYTES).`, { param: 'file', code: 'file_too_large' });

/** Base name only, no control characters, `.gz` dropped (the file is stored decompressed). */
export function cleanFilename(raw: string | undefined): string {
  // eslint-disable-next-line no-control-regex
  let name = (raw ?? '').replace(/[\u0000-\u001f\u007f]/g, '').split(/[/\\]/).pop() ?? '';
  name = name.replace(/\.gz$/i, '').trim().slice(0, 255);
  return name === '' || name === '.' || name === '..' ? 'upload.jsonl' : name;
}

const safe = (s: string): string => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
