import { UsageError } from './errors.js';
import { BATCH_STATUSES } from './types.js';

/** "--status completed,failed" → a set of statuses, every one checked against OpenAI's list. */
export function parseStatuses(text: string | undefined): Set<string> | null {
  if (text === undefined) return null;
  const wanted = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const unknown = wanted.filter((s) => !(BATCH_STATUSES as readonly string[]).includes(s));
  if (unknown.length > 0 || wanted.length === 0) {
    throw new UsageError(`Invalid --status '${text}': expected a comma-separated list of ${BATCH_STATUSES.join(', ')}.`);
  }
  return new Set(wanted);
}
