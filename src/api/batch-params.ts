import { InvalidRequestError } from '../domain/index.js';

export interface CreateBatchParams {
  inputFileId: string;
  endpoint: string;
  completionWindow: string;
  windowSeconds: number;
  metadata: Record<string, string> | null;
  outputExpiresAfter: number | null;
}

const MAX_METADATA_KEYS = 16;
const MAX_KEY_LENGTH = 64;
const MAX_VALUE_LENGTH = 512;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
const MIN_WINDOW = 1;
const MAX_WINDOW = 30 * 86_400;

/** Checks a POST /v1/batches body; request-shape problems are synchronous 400s, as OpenAI. */
export function parseCreateBatch(body: unknown, endpoints: readonly string[]): CreateBatchParams {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    // A string is also what a text/plain body arrives as.
    const hint = typeof body === 'string' ? ' sent as application/json' : '';
    throw new InvalidRequestError(`The request body must be a JSON object${hint}.`, { code: 'invalid_type' });
  }
  const b = body as Record<string, unknown>;
  const inputFileId = requireString(b, 'input_file_id');
  const endpoint = requireString(b, 'endpoint');
  if (!endpoints.includes(endpoint)) {
    throw new InvalidRequestError(`Invalid value: '${clip(endpoint)}'. Supported values are: ${endpoints.map((e) => `'${e}'`).join(', ')}.`, {
      param: 'endpoint',
      code: 'invalid_value',
    });
  }
  const completionWindow = requireString(b, 'completion_window');
  const windowSeconds = parseWindow(completionWindow);
  return { inputFileId, endpoint, completionWindow, windowSeconds, metadata: parseMetadata(b.metadata), outputExpiresAfter: parseExpiresAfter(b.output_expires_after) };
}

function requireString(b: Record<string, unknown>, key: string): string {
  const v = b[key];
  if (v === undefined || v === null) throw new InvalidRequestError(`Missing required parameter: '${key}'.`, { param: key, code: 'missing_required_parameter' });
  if (typeof v !== 'string') throw new InvalidRequestError(`Invalid type for '${key}': expected a string.`, { param: key, code: 'invalid_type' });
  return v;
}

/** `24h` as OpenAI, and other durations from 1s to 30d (`90m`, `7d`). */
function parseWindow(w: string): number {
  const m = /^(\d{1,7})([smhd])$/.exec(w);
  const secs = m ? Number(m[1]) * UNIT_SECONDS[m[2]!]! : NaN;
  if (!m || secs < MIN_WINDOW || secs > MAX_WINDOW) {
    throw new InvalidRequestError(`Invalid value: '${clip(w)}'. Supported values are: '24h' or a duration like '1h', '7d' (between 1s and 30d).`, {
      param: 'completion_window',
      code: 'invalid_value',
    });
  }
  return secs;
}

function parseMetadata(m: unknown): Record<string, string> | null {
  if (m === undefined || m === null) return null;
  if (typeof m !== 'object' || Array.isArray(m)) throw new InvalidRequestError("Invalid type for 'metadata': expected an object of strings.", { param: 'metadata', code: 'invalid_type' });
  const entries = Object.entries(m as Record<string, unknown>);
  if (entries.length > MAX_METADATA_KEYS) {
    throw new InvalidRequestError(`Invalid 'metadata': at most ${MAX_METADATA_KEYS} keys are allowed, got ${entries.length}.`, { param: 'metadata', code: 'invalid_value' });
  }
  for (const [k, v] of entries) {
    if (k.length > MAX_KEY_LENGTH) throw new InvalidRequestError(`Invalid 'metadata': key '${clip(k)}' is longer than ${MAX_KEY_LENGTH} characters.`, { param: 'metadata', code: 'invalid_value' });
    if (typeof v !== 'string') throw new InvalidRequestError(`Invalid type for 'metadata.${clip(k)}': expected a string.`, { param: `metadata.${clip(k)}`, code: 'invalid_type' });
    if (v.length > MAX_VALUE_LENGTH) {
      throw new InvalidRequestError(`Invalid 'metadata.${clip(k)}': values are at most ${MAX_VALUE_LENGTH} characters.`, { param: `metadata.${clip(k)}`, code: 'invalid_value' });
    }
  }
  return Object.fromEntries(entries) as Record<string, string>; // defines own keys, so '__proto__' stays data

}

/** `{anchor: 'created_at', seconds: 3600..2592000}` */
function parseExpiresAfter(v: unknown): number | null {
  if (v === undefined || v === null) return null;
  const o = v as { anchor?: unknown; seconds?: unknown };
  if (typeof v !== 'object' || o.anchor !== 'created_at' || typeof o.seconds !== 'number' || !Number.isInteger(o.seconds) || o.seconds < 3600 || o.seconds > 2_592_000) {
    throw new InvalidRequestError("Invalid 'output_expires_after': expected {anchor: 'created_at', seconds: 3600..2592000}.", { param: 'output_expires_after', code: 'invalid_value' });
  }
  return o.seconds;
}

/** Echoes a client value printable and bounded (the ellipsis is added after the cleaning, so it stays one). */
const clip = (s: string): string => {
  const printable = s.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 64 ? `${printable.slice(0, 64)}…` : printable;
};
