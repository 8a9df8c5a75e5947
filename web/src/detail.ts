import { AuthError, type DashBatch, firstLines, getJson } from './api.js';
import { byId, h } from './dom.js';
import { dateTime, duration, num } from './format.js';

const STEPS: Array<[string, keyof DashBatch]> = [
  ['created', 'created_at'],
  ['in progress', 'in_progress_at'],
  ['finalizing', 'finalizing_at'],
  ['completed', 'completed_at'],
  ['failed', 'failed_at'],
  ['cancelling', 'cancelling_at'],
  ['cancelled', 'cancelled_at'],
  ['expired', 'expired_at'],
];

function dl(entries: Array<[string, string]>): HTMLDListElement {
  return h('dl', { class: 'meta' }, ...entries.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** Opens the detail dialog: timeline, metadata, validation errors and the first error lines. */
export async function showDetail(id: string): Promise<void> {
  const dialog = byId<HTMLDialogElement>('detail');
  const body = byId('detail-body');
  byId('detail-title').textContent = id;
  body.replaceChildren(h('p', {}, 'Loading…'));
  if (!dialog.open) dialog.showModal();
  try {
    const b = await getJson<DashBatch>(`/v1/batches/${encodeURIComponent(id)}`);
    const c = b.request_counts;
    const steps = STEPS.filter(([, k]) => typeof b[k] === 'number').map(([label, k]): [string, string] => [label, dateTime(b[k] as number)]);
    const usage = await getJson<{ input_tokens: number; output_tokens: number; total_tokens: number; requests_per_second: number; eta_seconds: number | null }>(
      `/v1/batches/${encodeURIComponent(id)}/token_usage`,
    );
    const parts: HTMLElement[] = [
      h('h3', {}, 'Timeline'),
      dl([...steps, ['expires', dateTime(b.expires_at)]]),
      h('h3', {}, 'Details'),
      dl([
        ['status', b.status],
        ['endpoint', b.endpoint],
        ['model', b.model ?? '–'],
        ['requests', `${c.completed} completed, ${c.failed} failed, ${c.total} total`],
        ['tokens', `${num(usage.input_tokens)} in, ${num(usage.output_tokens)} out, ${num(usage.total_tokens)} total`],
        ['throughput', `${num(usage.requests_per_second)} req/s, ETA ${duration(usage.eta_seconds)}`],
        ['input file', b.input_file_id],
        ['output file', b.output_file_id ?? '–'],
        ['error file', b.error_file_id ?? '–'],
        ...Object.entries(b.metadata ?? {}).map(([k, v]): [string, string] => [`metadata.${k}`, v]),
      ]),
    ];
    if (b.errors?.data.length) {
      parts.push(h('h3', {}, 'Validation errors'), h('pre', {}, b.errors.data.map((e) => `line ${e.line ?? '–'}: ${e.code}: ${e.message}`).join('\n')));
    }
    if (b.error_file_id) {
      const lines = await firstLines(b.error_file_id, 10);
      parts.push(h('h3', {}, 'First errors'), h('pre', { class: 'error-lines' }, lines.join('\n') || '(empty)'));
    }
    // Closed meanwhile (or signed out): nothing to show.
    if (dialog.open && byId('detail-title').textContent === id) body.replaceChildren(...parts);
  } catch (err) {
    if (err instanceof AuthError) return; // the page asks for a key
    body.replaceChildren(h('p', { class: 'msg err' }, err instanceof Error ? err.message : String(err)));
  }
}
