import { pipeline } from 'node:stream/promises';

import type { FastifyRequest } from 'fastify';

import {
  type FileRecord,
  InvalidRequestError,
  newFileId,
  nowSeconds,
  PayloadTooLargeError,
  UPLOAD_PURPOSES,
} from '../domain/index.js';
import { decodeInput, JsonlError, UploadChecker } from '../jsonl/index.js';
import type { BlobStore, BlobUpload } from '../store/blob-store.js';

export interface UploadLimits {
  maxFileBytes: number;
  maxLineBytes: number;
}

/**
 * Streams a multipart upload (`file` + `purpose`, in any order) to the blob store: gzip is
 * decoded, every line is checked to be a JSON object, nothing is held in memory whole. On any
 * error the partial blob is removed and nothing is recorded.
 */
export async function receiveUpload(req: FastifyRequest, blobs: BlobStore, limits: UploadLimits): Promise<FileRecord> {
  if (!req.isMultipart()) {
    throw new InvalidRequestError("Expected a multipart/form-data body with a 'file' and a 'purpose'.", { code: 'invalid_content_type' });
  }
  const id = newFileId();
  const blobKey = `files/${id}.jsonl`;
  let upload: BlobUpload | null = null;
  let purpose: string | undefined;
  let filename: string | undefined;
  let bytes = 0;
  try {
    for await (const part of req.parts()) {
      if (part.type === 'field') {
        if (part.fieldname === 'purpose') purpose = typeof part.value === 'string' ? part.value : undefined;
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
      try {
        await pipeline(decodeInput(part.file, { maxDecompressedBytes: limits.maxFileBytes }), checker, upload.stream);
      } catch (err) {
        if (part.file.truncated) throw tooLarge(limits.maxFileBytes);
        if (err instanceof JsonlError) {
          part.file.resume(); // read the rest so the client gets our answer, not a reset
          throw uploadError(err, limits);
        }
        throw err;
      }
      if (part.file.truncated) throw tooLarge(limits.maxFileBytes);
      bytes = checker.bytes;
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
    await upload.commit();
    const now = nowSeconds();
    return { id, filename, purpose: 'batch', bytes, createdAt: now, expiresAt: null, blobKey, batchId: null };
  } catch (err) {
    await upload?.abort();
    const code = (err as { code?: unknown }).code;
    if (code === 'FST_REQ_FILE_TOO_LARGE') throw tooLarge(limits.maxFileBytes);
    throw multipartClientError(err) ?? err;
  }
}

const MALFORMED_MULTIPART = /multipart|boundary|needle|terminated early|Unsupported Content-Type/i;

/**
 * A 400 for a multipart body the client got wrong: the parser's limits (more than one file, too
 * many fields), and a body that is malformed or ends early (busboy raises plain Errors, and the
 * file part it destroys surfaces as a premature close). Null for anything else (disk errors
 * stay 5xx).
 */
function multipartClientError(err: unknown): InvalidRequestError | null {
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

function uploadError(err: JsonlError, limits: UploadLimits): Error {
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
