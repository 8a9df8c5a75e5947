import type { DashBatch, Progress } from './api.js';
import { h } from './dom.js';
import { dateTime, duration, num, percent } from './format.js';

const ACTIVE = new Set(['validating', 'in_progress', 'finalizing', 'cancelling']);

export interface RowActions {
  open(id: string): void;
  cancel(id: string): void;
  remove(id: string): void;
  /** Saves a file (fetched with the key: a plain link could not send it). */
  download(fileId: string, name: string, button: HTMLButtonElement): void;
}

/** The table's columns (the Project column only when viewing all projects). */
export const columnCount = (showProject: boolean): number => (showProject ? 11 : 10);

function progressCell(b: Pick<DashBatch, 'request_counts' | 'progress'>): HTMLElement {
  const c = b.request_counts;
  const fill = h('div', { class: 'fill', 'data-progress': String(b.progress) });
  fill.style.width = `${Math.round(b.progress * 1000) / 10}%`;
  return h(
    'td',
    { class: 'progress' },
    h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(Math.round(b.progress * 100)) }, fill),
    h('div', { class: 'counts' }, `${c.completed + c.failed} / ${c.total}${c.failed > 0 ? ` (${c.failed} failed)` : ''}`),
  );
}

/** The ETA, flagged when at the current rate the batch would finish after its deadline. */
function etaCell(eta: number | null, atRisk: boolean): HTMLElement {
  if (!atRisk) return h('td', { class: 'eta' }, eta === null ? '–' : duration(eta));
  return h('td', { class: 'eta at-risk', title: 'at its current rate this batch finishes after its deadline (expires_at)' }, `${duration(eta)} ⚠ past deadline`);
}

function fileButton(kind: 'output' | 'errors', fileId: string, name: string, act: RowActions): HTMLButtonElement {
  const btn = h('button', { type: 'button', class: `btn ${kind}`, 'data-file-id': fileId, title: `download ${name}` }, kind);
  btn.addEventListener('click', () => act.download(fileId, name, btn));
  return btn;
}

/** One table row; `data-id` lets live progress find it. */
export function batchRow(b: DashBatch, act: RowActions, showProject = false): HTMLTableRowElement {
  const idBtn = h('button', { type: 'button', class: 'id', title: 'details' }, b.id);
  idBtn.addEventListener('click', () => act.open(b.id));
  const actions = h('td', { class: 'actions' });
  if (ACTIVE.has(b.status) && b.status !== 'cancelling') {
    const c = h('button', { type: 'button', class: 'cancel' }, 'Cancel');
    c.addEventListener('click', () => act.cancel(b.id));
    actions.append(c);
  }
  if (b.output_file_id) actions.append(fileButton('output', b.output_file_id, `${b.id}_output.jsonl`, act));
  if (b.error_file_id) actions.append(fileButton('errors', b.error_file_id, `${b.id}_errors.jsonl`, act));
  const del = h('button', { type: 'button', class: 'delete danger' }, 'Delete');
  del.addEventListener('click', () => act.remove(b.id));
  actions.append(del);
  const queued = b.queue_position !== null ? ` #${b.queue_position}` : '';
  return h(
    'tr',
    { 'data-id': b.id, 'data-status': b.status, ...(b.project ? { 'data-project': b.project } : {}) },
    h('td', {}, idBtn),
    showProject ? h('td', { class: 'project' }, b.project ?? '–') : null,
    h('td', {}, h('span', { class: `status ${b.status}` }, b.status + queued)),
    progressCell(b),
    h('td', { class: 'rps' }, ACTIVE.has(b.status) ? num(b.requests_per_second) : '–'),
    etaCell(ACTIVE.has(b.status) ? b.eta_seconds : null, ACTIVE.has(b.status) && b.deadline_at_risk === true),
    h('td', {}, dateTime(b.created_at)),
    h('td', {}, duration(b.elapsed_seconds)),
    h('td', { class: 'err' }, percent(b.error_rate)),
    h('td', { class: 'tokens' }, `${num(b.input_tokens)} / ${num(b.output_tokens)}`),
    actions,
  );
}

/** Applies a live progress tick to the row of its batch, if shown. */
export function applyProgress(tbody: HTMLElement, p: Progress): void {
  const row = tbody.querySelector<HTMLTableRowElement>(`tr[data-id="${CSS.escape(p.id)}"]`);
  if (!row) return;
  row.querySelector('td.progress')?.replaceWith(progressCell(p));
  const set = (cls: string, text: string): void => {
    const td = row.querySelector(`td.${cls}`);
    if (td) td.textContent = text;
  };
  set('rps', num(p.requests_per_second));
  row.querySelector('td.eta')?.replaceWith(etaCell(p.eta_seconds, p.deadline_at_risk === true));
  set('err', percent(p.error_rate));
  set('tokens', `${num(p.input_tokens)} / ${num(p.output_tokens)}`);
}
