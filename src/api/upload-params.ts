import {
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  PayloadTooLargeError,
  printableId,
  UPLOAD_PURPOSES,
} from '../domain/index.js';
import type { UploadRecord } from '../store/upload-store.js';
import { cleanFilename } from './file-upload.js';

/** OpenAI's bound on one part (the SDK helpers send 64 MiB parts). */
export const MAX_PART_BYTES = 64 * 1024 * 1024;

/** OpenAI's bounds for `expires_after.seconds`: 1 hour to 30 days (as for a direct upload). */
const MIN_EXPIRES_AFTER = 3600;
const MAX_EXPIRES_AFTER = 2_592_000;

export interface CreateUploadParams {
  filename: string;
  bytes: number;
  mimeType: string;
  /** The completed File's lifetime in seconds; undefined: the server's default. */
  fileExpiresAfter: number | undefined;
}

export interface CompleteUploadParams {
  partIds: string[];
  /** Lower-case hex, when given. */
  md5: string | null;
}

type Body = Record<string, unknown>;

function objectBody(body: unknown): Body {
  if (body === undefined || body === null) throw new InvalidRequestError('Expected a JSON object body.', { code: 'invalid_type' });
  if (typeof body !== 'object' || Array.isArray(body)) throw new InvalidRequestError('The request body must be a JSON object.', { code: 'invalid_type' });
  return body as Body;
}

const missing = (param: string): InvalidRequestError =>
  new InvalidRequestError(`Missing required parameter: '${param}'.`, { param, code: 'missing_required_parameter' });

const wrongType = (param: string, expected: string): InvalidRequestError =>
  new InvalidRequestError(`Invalid type for '${param}': expected ${expected}.`, { param, code: 'invalid_type' });

/** `POST /v1/uploads`: the body as OpenAI defines it; BESH stores purpose `batch` only, as a direct upload does. */
export function parseCreateUpload(raw: unknown, maxUploadBytes: number): CreateUploadParams {
  const body = objectBody(raw);
  const { filename, purpose, bytes, mime_type: mimeType } = body;
  if (filename === undefined || filename === null) throw missing('filename');
  if (typeof filename !== 'string') throw wrongType('filename', 'a string');
  if (purpose === undefined || purpose === null) throw missing('purpose');
  if (typeof purpose !== 'string') throw wrongType('purpose', 'a string');
  if (bytes === undefined || bytes === null) throw missing('bytes');
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes)) throw wrongType('bytes', 'an integer');
  if (mimeType === undefined || mimeType === null) throw missing('mime_type');
  if (typeof mimeType !== 'string') throw wrongType('mime_type', 'a string');

  if (purpose !== 'batch') {
    const known = (UPLOAD_PURPOSES as readonly string[]).includes(purpose);
    throw new InvalidRequestError(
      known
        ? `BESH stores files for the Batch API only: purpose must be 'batch', got '${safe(purpose)}'.`
        : `Invalid value for 'purpose': '${safe(purpose)}'. Supported values are: 'batch'.`,
      { param: 'purpose', code: 'invalid_value' },
    );
  }
  if (bytes < 1) throw new InvalidRequestError(`Invalid value for 'bytes': ${bytes}. Expected the file's size, at least 1.`, { param: 'bytes', code: 'invalid_value' });
  if (bytes > maxUploadBytes) {
    throw new PayloadTooLargeError(`The file is larger than the ${maxUploadBytes}-byte limit of an upload (BESH_MAX_UPLOAD_BYTES): 'bytes' is ${bytes}.`, {
      param: 'bytes',
      code: 'upload_too_large',
    });
  }
  if (mimeType.trim() === '' || mimeType.length > 255) throw new InvalidRequestError("Invalid value for 'mime_type': expected a MIME type such as 'application/jsonl'.", { param: 'mime_type', code: 'invalid_value' });
  const name = cleanFilename(filename);
  if (!/\.jsonl$/i.test(name)) throw new InvalidRequestError('Invalid file format for Batch API. Must be .jsonl', { param: 'filename', code: 'invalid_file_format' });
  return { filename: name, bytes, mimeType: mimeType.trim(), fileExpiresAfter: parseExpiresAfter(body.expires_after) };
}

/** `expires_after: {anchor: "created_at", seconds}` (the completed File's lifetime), or absent. */
function parseExpiresAfter(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw wrongType('expires_after', "an object {anchor: 'created_at', seconds}");
  const { anchor, seconds } = v as Body;
  if (anchor === undefined || anchor === null) throw missing('expires_after.anchor');
  if (seconds === undefined || seconds === null) throw missing('expires_after.seconds');
  if (anchor !== 'created_at') {
    throw new InvalidRequestError(`Invalid value for 'expires_after.anchor': ${safe(JSON.stringify(anchor))}. Supported values are: 'created_at'.`, {
      param: 'expires_after.anchor',
      code: 'invalid_value',
    });
  }
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < MIN_EXPIRES_AFTER || seconds > MAX_EXPIRES_AFTER) {
    throw new InvalidRequestError(
      `Invalid value for 'expires_after.seconds': ${safe(JSON.stringify(seconds))}. Expected an integer between ${MIN_EXPIRES_AFTER} (1 hour) and ${MAX_EXPIRES_AFTER} (30 days).`,
      { param: 'expires_after.seconds', code: 'invalid_value' },
    );
  }
  return seconds;
}

/** `POST /v1/uploads/{id}/complete`: `part_ids` in order (no repeats), optional `md5` (hex). */
export function parseCompleteUpload(raw: unknown): CompleteUploadParams {
  const body = objectBody(raw);
  const { part_ids: partIds, md5 } = body;
  if (partIds === undefined || partIds === null) throw missing('part_ids');
  if (!Array.isArray(partIds) || !partIds.every((p) => typeof p === 'string')) throw wrongType('part_ids', 'an array of part ids');
  if (partIds.length === 0) throw new InvalidRequestError("Invalid value for 'part_ids': list at least one part.", { param: 'part_ids', code: 'invalid_value' });
  const seen = new Set<string>();
  for (const id of partIds) {
    if (seen.has(id)) {
      throw new InvalidRequestError(`Part ${printableId(id)} is listed twice in 'part_ids'; list each part once, in order.`, { param: 'part_ids', code: 'duplicate_part_id' });
    }
    seen.add(id);
  }
  let hex: string | null = null;
  if (md5 !== undefined && md5 !== null) {
    if (typeof md5 !== 'string' || !/^[0-9a-fA-F]{32}$/.test(md5.trim())) {
      throw new InvalidRequestError("Invalid value for 'md5': expected the file's MD5 as 32 hexadecimal digits.", { param: 'md5', code: 'invalid_value' });
    }
    hex = md5.trim().toLowerCase();
  }
  return { partIds, md5: hex };
}

// ── errors shared by the routes ──────────────────────────────────────────────────────────────

export const uploadNotFound = (id: string): NotFoundError =>
  new NotFoundError(`No such Upload object: ${printableId(id)}`, { param: 'upload_id', code: 'upload_not_found' });

/** The status as a client should see it: a pending upload past its expiry is expired, swept or not. */
export const effectiveStatus = (u: Pick<UploadRecord, 'status' | 'expiresAt'>, now: number): UploadRecord['status'] =>
  u.status === 'pending' && now >= u.expiresAt ? 'expired' : u.status;

const ACTIONS = { part: 'take more parts', complete: 'be completed', cancel: 'be cancelled' } as const;

/** A part, a completion or a cancel sent to an upload that is no longer pending. */
export const notPending = (id: string, status: string, action: keyof typeof ACTIONS): ConflictError =>
  new ConflictError(`Upload ${id} is ${status}: only a pending upload can ${ACTIONS[action]}.`, { param: 'upload_id', code: 'upload_not_pending' });

export const completionInProgress = (id: string): ConflictError =>
  new ConflictError(`Upload ${id} is being completed by another request; wait for it to finish.`, { param: 'upload_id', code: 'upload_in_progress' });

export const partTooLarge = (): PayloadTooLargeError =>
  new PayloadTooLargeError(`A part is at most ${MAX_PART_BYTES} bytes (64 MiB); send the file in more parts.`, { param: 'data', code: 'part_too_large' });

export const pastDeclaredBytes = (u: UploadRecord, received: number): InvalidRequestError =>
  new InvalidRequestError(
    `This part would take upload ${u.id} past the ${u.bytes} bytes declared when it was created (${received} bytes received in earlier parts).`,
    { param: 'data', code: 'upload_bytes_exceeded' },
  );

export const uploadTooLarge = (max: number): PayloadTooLargeError =>
  new PayloadTooLargeError(`The file is larger than the ${max}-byte limit of an upload (BESH_MAX_UPLOAD_BYTES) once decompressed.`, {
    param: 'part_ids',
    code: 'upload_too_large',
  });

const safe = (s: string): string => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
