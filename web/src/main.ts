import { cancelBatch, type Dashboard, deleteBatch, type EngineView, getJson, type Live, type Progress, type Timeline } from './api.js';
import { Chart } from './charts.js';
import { showDetail } from './detail.js';
import { byId, h } from './dom.js';
import { bytes, duration, num, percent, setTimeZone, timeZones } from './format.js';
import { applyProgress, batchRow } from './table.js';
import { setupUpload } from './upload.js';

const STATUSES = ['validating', 'in_progress', 'finalizing', 'completed', 'failed', 'expired', 'cancelling', 'cancelled'];
const PAGE_SIZE = 20;
const REFRESH_MS = 10_000;

const state = { page: 1, status: '', auto: true };
const rows = byId('rows');

const charts = {
  rps: new Chart({ el: byId('ch-rps'), series: [{ label: 'requests/s', stroke: '#2f6fed', fill: 'rgba(47,111,237,.12)' }] }),
  tps: new Chart({ el: byId('ch-tps'), series: [{ label: 'tokens/s', stroke: '#7a5af8', fill: 'rgba(122,90,248,.12)' }] }),
  done: new Chart({ el: byId('ch-done'), bars: true, series: [{ label: 'completed', stroke: '#1a9e5a', fill: 'rgba(26,158,90,.5)' }, { label: 'failed', stroke: '#d92d20', fill: 'rgba(217,45,32,.5)' }] }),
  uploads: new Chart({ el: byId('ch-uploads'), bars: true, series: [{ label: 'files', stroke: '#e8a317', fill: 'rgba(232,163,23,.5)' }] }),
  created: new Chart({ el: byId('ch-created'), bars: true, series: [{ label: 'batches', stroke: '#2f6fed', fill: 'rgba(47,111,237,.5)' }] }),
};

function card(label: string, value: string, sub = ''): HTMLElement {
  return h('div', { class: 'card' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), sub ? h('div', { class: 'sub' }, sub) : null);
}

function renderSummary(d: Dashboard): void {
  const s = d.summary;
  const by = Object.entries(s.batches_by_status).filter(([, n]) => n > 0);
  const total = by.reduce((a, [, n]) => a + n, 0);
  byId('cards').replaceChildren(
    card('Batches (24 h)', num(total), by.map(([k, n]) => `${k} ${n}`).join(' · ') || 'none'),
    card('Requests', num(s.requests_completed + s.requests_failed), `${num(s.requests_completed)} ok · ${num(s.requests_failed)} failed`),
    card('Error rate', percent(s.error_rate)),
    card('Tokens in', num(s.input_tokens)),
    card('Tokens out', num(s.output_tokens)),
    card('Avg batch duration', duration(s.avg_batch_duration_seconds), `avg request ${num(s.avg_latency_ms)} ms`),
    card('Uploads', num(s.uploads), bytes(s.upload_bytes)),
  );
}

function renderEngine(e: EngineView): void {
  byId('eng-inflight').textContent = `${e.in_flight} / ${e.max_workers}`;
  byId('eng-bar').style.width = `${Math.min(100, e.utilisation * 100)}%`;
  byId('eng-active').textContent = String(e.active_batches);
  byId('eng-queued').textContent = String(e.queue.length);
  byId('eng-queue').replaceChildren(...e.queue.slice(0, 20).map((q) => h('li', {}, q.id)));
}

async function renderUpstream(): Promise<void> {
  const el = byId('eng-upstream');
  try {
    const hl = await getJson<{ status: string; upstreams?: Array<{ url: string; healthy: boolean; latency_ms?: number }> }>('/health');
    const ups = hl.upstreams ?? [];
    el.replaceChildren(
      h('div', {}, `BESH: ${hl.status}`),
      ...ups.map((u) => h('div', {}, `${u.healthy ? '●' : '○'} ${u.url} ${u.healthy ? 'reachable' : 'unreachable'}${u.latency_ms ? ` · ${u.latency_ms} ms` : ''}`)),
    );
  } catch {
    el.textContent = 'BESH unreachable';
  }
}

const actions = {
  open: (id: string) => void showDetail(id),
  cancel: (id: string) => {
    void cancelBatch(id).then(refreshTable, (err: unknown) => alert(String(err)));
  },
  remove: (id: string) => {
    if (!confirm(`Delete ${id} and its output and error files?`)) return;
    void deleteBatch(id).then(refreshTable, (err: unknown) => alert(String(err)));
  },
};

async function refreshTable(): Promise<void> {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE), page: String(state.page) });
  if (state.status) q.set('status', state.status);
  const d = await getJson<Dashboard>(`/v1/batches/dashboard?${q.toString()}`);
  renderSummary(d);
  renderEngine(d.engine);
  rows.replaceChildren(...d.data.map((b) => batchRow(b, actions)));
  if (d.data.length === 0) rows.append(h('tr', {}, h('td', { colspan: '10' }, 'No batches.')));
  const pages = Math.max(1, Math.ceil(d.total / d.limit));
  byId('page-info').textContent = `page ${d.page} of ${pages} · ${d.total} batches`;
  byId<HTMLButtonElement>('prev').disabled = d.page <= 1;
  byId<HTMLButtonElement>('next').disabled = !d.has_more;
}

async function refreshCharts(): Promise<void> {
  const [live, timeline] = await Promise.all([getJson<Live>('/v1/batches/analytics/live?minutes=60'), getJson<Timeline>('/v1/batches/analytics/timeline')]);
  const lx = live.data.map((p) => p.timestamp);
  charts.rps.set(lx, [live.data.map((p) => p.requests_per_second)]);
  charts.tps.set(lx, [live.data.map((p) => p.tokens_per_second)]);
  const tx = timeline.data.map((p) => p.timestamp);
  charts.done.set(tx, [timeline.data.map((p) => p.requests_completed), timeline.data.map((p) => p.requests_failed)]);
  charts.uploads.set(tx, [timeline.data.map((p) => p.uploads)]);
  charts.created.set(tx, [timeline.data.map((p) => p.batches_created)]);
  renderEngine(live.engine);
}

async function refreshAll(): Promise<void> {
  await Promise.all([refreshTable(), refreshCharts(), renderUpstream()]).catch((err: unknown) => console.warn('refresh failed', err));
}

/** Live updates: progress ticks patch rows in place; status changes reload the table. */
function connectEvents(): void {
  const conn = byId('conn');
  const es = new EventSource('/v1/events');
  let reload: number | null = null;
  const soon = (): void => {
    reload ??= window.setTimeout(() => {
      reload = null;
      void refreshTable().catch(() => undefined);
    }, 300);
  };
  es.addEventListener('open', () => {
    conn.textContent = 'live';
    conn.className = 'pill live';
  });
  es.addEventListener('error', () => {
    conn.textContent = 'reconnecting…';
    conn.className = 'pill down';
  });
  es.addEventListener('progress', (e) => {
    if (state.auto) applyProgress(rows, JSON.parse((e as MessageEvent<string>).data) as Progress);
  });
  es.addEventListener('engine', (e) => {
    if (state.auto) renderEngine(JSON.parse((e as MessageEvent<string>).data) as EngineView);
  });
  es.addEventListener('status', () => state.auto && soon());
  es.addEventListener('deleted', () => state.auto && soon());
}

function setupControls(): void {
  const tz = byId<HTMLSelectElement>('tz');
  const saved = localStorage.getItem('besh.tz') ?? 'local';
  tz.replaceChildren(...timeZones().map((z) => h('option', { value: z }, z === 'local' ? `Local (${Intl.DateTimeFormat().resolvedOptions().timeZone})` : z)));
  tz.value = saved;
  setTimeZone(saved);
  tz.addEventListener('change', () => {
    localStorage.setItem('besh.tz', tz.value);
    setTimeZone(tz.value);
    void refreshAll();
  });
  const auto = byId<HTMLInputElement>('auto');
  auto.checked = localStorage.getItem('besh.auto') !== 'off';
  state.auto = auto.checked;
  auto.addEventListener('change', () => {
    state.auto = auto.checked;
    localStorage.setItem('besh.auto', auto.checked ? 'on' : 'off');
  });
  byId('refresh').addEventListener('click', () => void refreshAll());
  const filter = byId<HTMLSelectElement>('filter');
  filter.append(...STATUSES.map((s) => h('option', { value: s }, s)));
  filter.addEventListener('change', () => {
    state.status = filter.value;
    state.page = 1;
    void refreshTable();
  });
  byId('prev').addEventListener('click', () => {
    state.page = Math.max(1, state.page - 1);
    void refreshTable();
  });
  byId('next').addEventListener('click', () => {
    state.page++;
    void refreshTable();
  });
  byId('detail-close').addEventListener('click', () => byId<HTMLDialogElement>('detail').close());
}

setupControls();
setupUpload(() => void refreshAll());
connectEvents();
void refreshAll();
setInterval(() => {
  if (state.auto) void refreshAll();
}, REFRESH_MS);
