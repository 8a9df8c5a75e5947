import type { Usage } from '../domain/index.js';
import { usageFromObject } from '../jsonl/index.js';

/** Usage recorded in one line of an output file (for recomputing totals on resume). */
export function usageOfOutputLine(text: string): Usage | null {
  try {
    const o = JSON.parse(text) as { response?: { body?: { usage?: unknown } | null } };
    return usageFromObject(o.response?.body?.usage);
  } catch {
    return null;
  }
}
