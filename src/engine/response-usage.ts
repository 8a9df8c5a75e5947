import type { Usage } from '../domain/index.js';
import { extractUsage, usageFromObject } from '../jsonl/index.js';

const WHOLE_PARSE_LIMIT = 32 * 1024;

/**
 * Usage of a 2xx upstream body. undefined: the body is not a JSON object (it must not reach the
 * output file); null: JSON without usage. Small bodies are parsed whole; large ones (embeddings)
 * are checked by shape and only their `usage` is parsed, to keep the hot path cheap.
 */
export function usageOfResponse(body: string): Usage | null | undefined {
  if (body.length <= WHOLE_PARSE_LIMIT) {
    try {
      const o = JSON.parse(body) as unknown;
      if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
      return usageFromObject((o as { usage?: unknown }).usage);
    } catch {
      return undefined;
    }
  }
  const t = body.trim();
  if (!t.startsWith('{') || !t.endsWith('}')) return undefined;
  return extractUsage(body);
}

/** Usage recorded in one line of an output file (for recomputing totals on resume). */
export function usageOfOutputLine(text: string): Usage | null {
  try {
    const o = JSON.parse(text) as { response?: { body?: { usage?: unknown } | null } };
    return usageFromObject(o.response?.body?.usage);
  } catch {
    return null;
  }
}
