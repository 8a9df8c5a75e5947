import type { Usage } from '../domain/index.js';
import { usageFromObject } from '../jsonl/index.js';

/**
 * Usage of a 2xx upstream body. undefined: the body is not a JSON object (it must not reach the
 * output file, where it is written as is); null: JSON without usage. Every body is parsed whole,
 * large ones too (≈ 0.5 ms for an 80 KB embedding answer): checking the shape and parsing only
 * `usage` let a body that is not JSON but ends in a well-formed usage corrupt the output file.
 */
export function usageOfResponse(body: string): Usage | null | undefined {
  try {
    const o = JSON.parse(body) as unknown;
    if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
    return usageFromObject((o as { usage?: unknown }).usage);
  } catch {
    return undefined;
  }
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
