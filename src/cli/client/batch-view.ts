import { formatDuration, formatTime } from './format.js';
import type { Batch } from './types.js';

const TIMESTAMPS: Array<[keyof Batch, string]> = [
  ['created_at', 'created'],
  ['in_progress_at', 'in progress'],
  ['finalizing_at', 'finalizing'],
  ['completed_at', 'completed'],
  ['failed_at', 'failed'],
  ['cancelling_at', 'cancelling'],
  ['cancelled_at', 'cancelled'],
  ['expired_at', 'expired'],
  ['expires_at', 'expires'],
];

/** Seconds the batch ran (or has been running), from in_progress_at to its end or now. */
export function elapsedSeconds(b: Batch, now = Date.now() / 1000): number | null {
  if (b.in_progress_at === null) return null;
  const end = b.completed_at ?? b.failed_at ?? b.cancelled_at ?? b.expired_at ?? now;
  return Math.max(0, end - b.in_progress_at);
}

/** A batch as labelled lines, for people: status, counts, files, usage, timestamps, errors. */
export function renderBatch(b: Batch): string {
  const rows: Array<[string, string]> = [];
  const { total, completed, failed } = b.request_counts;
  rows.push(['id', b.id]);
  rows.push(['status', b.queue_position ? `${b.status} (queue position ${b.queue_position})` : b.status]);
  rows.push(['endpoint', b.model ? `${b.endpoint} (model ${b.model})` : b.endpoint]);
  const inFlight = b.in_flight ? `, ${b.in_flight} in flight` : '';
  const pct = total > 0 ? ` (${Math.floor(((completed + failed) / total) * 100)}% done)` : '';
  rows.push(['requests', `${completed} completed, ${failed} failed, ${total} total${inFlight}${pct}`]);
  rows.push(['input file', b.input_file_id]);
  rows.push(['output file', b.output_file_id ?? '-']);
  rows.push(['error file', b.error_file_id ?? '-']);
  if (b.usage && b.usage.total_tokens > 0) {
    const cached = b.usage.input_tokens_details?.cached_tokens ? ` (${b.usage.input_tokens_details.cached_tokens} cached)` : '';
    const reasoning = b.usage.output_tokens_details?.reasoning_tokens ? ` (${b.usage.output_tokens_details.reasoning_tokens} reasoning)` : '';
    rows.push(['usage', `${b.usage.input_tokens} input${cached} + ${b.usage.output_tokens} output${reasoning} = ${b.usage.total_tokens} tokens`]);
  }
  for (const [key, label] of TIMESTAMPS) {
    const v = b[key];
    if (typeof v === 'number') rows.push([label, formatTime(v)]);
  }
  const elapsed = elapsedSeconds(b);
  if (elapsed !== null) rows.push(['elapsed', formatDuration(elapsed)]);
  rows.push(['window', b.completion_window]);
  const meta = Object.entries(b.metadata ?? {});
  if (meta.length > 0) rows.push(['metadata', meta.map(([k, v]) => `${k}=${v}`).join(', ')]);
  const width = Math.max(...rows.map(([k]) => k.length));
  let out = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n';
  const errors = b.errors?.data ?? [];
  if (errors.length > 0) {
    out += `\nErrors (${errors.length}):\n`;
    for (const e of errors) {
      const where = e.line !== null && e.line !== undefined ? `line ${e.line}: ` : '';
      out += `  ${where}${e.code ? `[${e.code}] ` : ''}${e.message ?? ''}\n`;
    }
  }
  return out;
}
