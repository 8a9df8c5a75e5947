import type { BatchError } from '../domain/index.js';
import { printableId } from '../domain/index.js';

export const MAX_CUSTOM_ID_LENGTH = 512;

export interface ValidationContext {
  /** The batch endpoint every line's `url` must equal, e.g. '/v1/chat/completions'. */
  endpoint: string;
  /** custom_ids of earlier lines; a line's valid custom_id is added to it (a Set or a FingerprintSet). */
  seenCustomIds: { has(id: string): boolean; add(id: string): unknown };
  /** In UTF-16 code units, e.g. MAX_CUSTOM_ID_LENGTH. */
  maxCustomIdLength: number;
}

export interface BatchRequestLine {
  customId: string;
  method: 'POST';
  url: string;
  body: Record<string, unknown>;
  model: string;
}

export type ValidationOutcome = { ok: true; request: BatchRequestLine } | { ok: false; errors: BatchError[] };

const NOT_JSON = 'This line is not parseable as valid JSON.';

/**
 * Checks one input line of a batch (OpenAI's codes and params, reference §3.1). Reports every
 * problem of the line, except ones that only follow from another (no body → no model check).
 * A custom_id that is itself valid and new is added to `ctx.seenCustomIds`, even when another
 * field of the line is wrong.
 */
export function validateRequestLine(text: string, line: number, ctx: ValidationContext): ValidationOutcome {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return fail([{ code: 'invalid_json_line', message: NOT_JSON, param: null, line }]);
  }
  if (!isObject(parsed)) return fail([{ code: 'invalid_json_line', message: NOT_JSON, param: null, line }]);

  const errors: BatchError[] = [];
  const err = (code: string, param: string | null, message: string): void => {
    errors.push({ code, message, param, line });
  };
  const missing = (key: string): void => err('missing_required_parameter', key, `Missing required parameter: '${key}'.`);

  const customId = parsed['custom_id'];
  if (customId === undefined || customId === null) missing('custom_id');
  else if (typeof customId !== 'string') err('invalid_request', 'custom_id', `custom_id must be a string; got ${describe(customId)}.`);
  else if (customId.length === 0) err('invalid_request', 'custom_id', 'custom_id must not be empty.');
  else if (customId.length > ctx.maxCustomIdLength) {
    err('invalid_request', 'custom_id', `custom_id must be at most ${ctx.maxCustomIdLength} characters; got ${customId.length}.`);
  } else if (ctx.seenCustomIds.has(customId)) {
    err(
      'duplicate_custom_id',
      'custom_id',
      `The custom_id '${printableId(customId)}' is used by more than one request (first on another line).`,
    );
  } else ctx.seenCustomIds.add(customId);

  const method = parsed['method'];
  if (method === undefined || method === null) missing('method');
  else if (method !== 'POST') {
    const got = typeof method === 'string' ? `'${printableId(method)}'` : describe(method);
    err('invalid_request', 'method', `Only POST is supported; got ${got}.`);
  }

  const url = parsed['url'];
  if (url === undefined || url === null) missing('url');
  else if (url !== ctx.endpoint) err('invalid_url', 'url', 'The URL provided for this request does not match the batch endpoint.');

  const body = parsed['body'];
  let model: string | null = null;
  if (body === undefined || body === null) missing('body');
  else if (!isObject(body)) err('invalid_request', 'body', `The body must be a JSON object; got ${describe(body)}.`);
  else {
    const m = body['model'];
    if (typeof m === 'string' && m.length > 0) model = m;
    else err('invalid_request', 'body.model', 'Model parameter is required.');
    if (body['stream'] === true) {
      err('streaming_unsupported', 'body.stream', `${endpointLabel(ctx.endpoint)}Streaming is not supported in the Batch API.`);
    }
  }

  if (errors.length > 0) return fail(errors);
  return {
    ok: true,
    request: { customId: customId as string, method: 'POST', url: url as string, body: body as Record<string, unknown>, model: model! },
  };
}

const fail = (errors: BatchError[]): ValidationOutcome => ({ ok: false, errors });

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return 'a string';
  return `${typeof v} ${JSON.stringify(v)?.slice(0, 40) ?? ''}`;
}

const LABELS: Record<string, string> = {
  '/v1/chat/completions': 'Chat Completions: ',
  '/v1/completions': 'Completions: ',
  '/v1/responses': 'Responses: ',
  '/v1/embeddings': 'Embeddings: ',
};
const endpointLabel = (endpoint: string): string => LABELS[endpoint] ?? '';
