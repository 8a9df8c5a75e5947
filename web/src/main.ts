import {
  AuthError,
  cancelBatch,
  type Dashboard,
  deleteBatch,
  downloadFile,
  type EngineView,
  getJson,
  getMe,
  getProjects,
  type Live,
  onUnauthorized,
  type Principal,
  type Progress,
  scoped,
  setViewProject,
  type Timeline,
} from './api.js';
import { Chart } from './charts.js';
import { showDetail } from './detail.js';
import { byId, h } from './dom.js';
import { streamEvents } from './events.js';
import { bytes, duration, num, percent, setTimeZone, timeZones } from './format.js';
import { forgetKey, hasKey, KEY_STORAGE, syncStoredKey, useKey, wellFormedKey } from './key-store.js';
import { applyProgress, batchRow, columnCount } from './table.js';
import { setupUpload } from './upload.js';
import { clearWebhooks, refreshWebhooks } from './webhooks.js';

const STATUSES = ['validating', 'in_progress', 'finalizing', 'completed', 'failed', 'expired', 'cancelling', 'cancelled'];
const PAGE_SIZE = 20;
const REFRESH_MS = 10_000;
const PROJECT_STORAGE = 'besh.project';

const state = {
  page: 1,
  status: '',
  auto: true,
  /** Admins: the project in view ('' = all). */
  project: '',
  /** Who the key is; null while signed out. */
  me: null as Principal | null,
  /** Bumped whenever the view changes (sign-in/out, project): late answers for an older view are dropped. */
  gen: 0,
};
const rows = byId('rows');
let stopEvents: (() => void) | null = null;

const charts = {
  rps: new Chart({ el: byId('ch-rps'), series: [{ label: 'requests/s', stroke: '#2f6fed', fill: 'rgba(47,111,237,.12)' }] }),
  tps: new Chart({ el: byId('ch-tps'), series: [{ label: 'tokens/s', stroke: '#7a5af8', fill: 'rgba(122,90,248,.12)' }] }),
  done: new Chart({ el: byId('ch-done'), bars: true, series: [{ label: 'completed', stroke: '#1a9e5a', fill: 'rgba(26,158,90,.5)' }, { label: 'failed', stroke: '#d92d20', fill: 'rgba(217,45,32,.5)' }] }),
  uploads: new Chart({ el: byId('ch-uploads'), bars: true, series: [{ label: 'files', stroke: '#e8a317', fill: 'rgba(232,163,23,.5)' }] }),
  created: new Chart({ el: byId('ch-created'), bars: true, series: [{ label: 'batches', stroke: '#2f6fed', fill: 'rgba(47,111,237,.5)' }] }),
};

/** Admins (and open mode) viewing every project see a Project column. */
const showProject = (): boolean => state.me?.admin === true && state.project === '';
/** The project an upload goes to: an admin's chosen one (null: the key's own). */
const uploadProject = (): string | null => (state.me?.admin && state.project !== '' ? state.project : null);

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
  byId('eng-queue').replaceChildren(...e.queue.slice(0, 20).map((q) => h('li', {}, showProject() && q.project ? `${q.id} · ${q.project}` : q.id)));
  byId('eng-project').textContent =
    e.project === undefined ? '' : `${e.project}: ${e.project_in_flight ?? 0} in flight · ${e.project_active_batches ?? 0} active batch${e.project_active_batches === 1 ? '' : 'es'}`;
}

async function renderUpstream(): Promise<void> {
  const el = byId('eng-upstream');
  const gen = state.gen;
  try {
    const hl = await getJson<{ status: string; upstreams?: Array<{ url: string; healthy: boolean; latency_ms?: number }> }>('/health');
    if (gen !== state.gen) return;
    const ups = hl.upstreams ?? [];
    el.replaceChildren(
      h('div', {}, `BESH: ${hl.status}`),
      ...ups.map((u) => h('div', {}, `${u.healthy ? '●' : '○'} ${u.url} ${u.healthy ? 'reachable' : 'unreachable'}${u.latency_ms ? ` · ${u.latency_ms} ms` : ''}`)),
    );
  } catch {
    if (gen === state.gen) el.textContent = 'BESH unreachable';
  }
}

/** Errors worth a dialog (a 401 already brought up the key form). */
const report = (err: unknown): void => {
  if (!(err instanceof AuthError)) alert(err instanceof Error ? err.message : String(err));
};

const refreshFailed = (err: unknown): void => {
  if (!(err instanceof AuthError)) console.warn('refresh failed', err instanceof Error ? err.message : String(err));
};
/** Reloads the table (errors noted, never unhandled). */
const reloadTable = (): void => void refreshTable().catch(refreshFailed);

const actions = {
  open: (id: string) => void showDetail(id),
  cancel: (id: string) => {
    void cancelBatch(id).then(reloadTable, report);
  },
  remove: (id: string) => {
    if (!confirm(`Delete ${id} and its output and error files?`)) return;
    void deleteBatch(id).then(reloadTable, report);
  },
  download: (fileId: string, name: string, btn: HTMLButtonElement) => {
    const label = btn.textContent;
    btn.disabled = true;
    downloadFile(fileId, name, (loaded, total) => (btn.textContent = total ? `${Math.floor((loaded / total) * 100)}%` : bytes(loaded)))
      .catch(report)
      .finally(() => {
        btn.disabled = false;
        btn.textContent = label;
      });
  },
};

async function refreshTable(): Promise<void> {
  const gen = state.gen;
  const q = new URLSearchParams({ limit: String(PAGE_SIZE), page: String(state.page) });
  if (state.status) q.set('status', state.status);
  const d = await getJson<Dashboard>(scoped(`/v1/batches/dashboard?${q.toString()}`));
  if (gen !== state.gen) return;
  const withProject = showProject();
  byId('th-project').hidden = !withProject;
  renderSummary(d);
  renderEngine(d.engine);
  rows.replaceChildren(...d.data.map((b) => batchRow(b, actions, withProject)));
  if (d.data.length === 0) rows.append(h('tr', {}, h('td', { colspan: String(columnCount(withProject)) }, 'No batches.')));
  const pages = Math.max(1, Math.ceil(d.total / d.limit));
  byId('page-info').textContent = `page ${d.page} of ${pages} · ${d.total} batches`;
  byId<HTMLButtonElement>('prev').disabled = d.page <= 1;
  byId<HTMLButtonElement>('next').disabled = !d.has_more;
}

async function refreshCharts(): Promise<void> {
  const gen = state.gen;
  const [live, timeline] = await Promise.all([getJson<Live>(scoped('/v1/batches/analytics/live?minutes=60')), getJson<Timeline>(scoped('/v1/batches/analytics/timeline'))]);
  if (gen !== state.gen) return;
  const lx = live.data.map((p) => p.timestamp);
  charts.rps.set(lx, [live.data.map((p) => p.requests_per_second)]);
  charts.tps.set(lx, [live.data.map((p) => p.tokens_per_second)]);
  const tx = timeline.data.map((p) => p.timestamp);
  charts.done.set(tx, [timeline.data.map((p) => p.requests_completed), timeline.data.map((p) => p.requests_failed)]);
  charts.uploads.set(tx, [timeline.data.map((p) => p.uploads)]);
  charts.created.set(tx, [timeline.data.map((p) => p.batches_created)]);
  renderEngine(live.engine);
}

/** Admins: the project filter's choices (kept current: projects appear with their first upload). */
async function refreshProjects(): Promise<void> {
  if (!state.me?.admin) return;
  const gen = state.gen;
  const names = (await getProjects()).map((p) => p.name);
  if (gen !== state.gen) return;
  if (state.project !== '' && !names.includes(state.project)) names.push(state.project);
  const select = byId<HTMLSelectElement>('project');
  const have = [...select.options].map((o) => o.value).slice(1);
  if (have.join('\n') === names.join('\n')) return;
  select.replaceChildren(h('option', { value: '' }, 'All projects'), ...names.map((n) => h('option', { value: n }, n)));
  select.value = state.project;
}

async function refreshAll(): Promise<void> {
  if (!state.me) return;
  const gen = state.gen;
  await Promise.all([refreshTable(), refreshCharts(), renderUpstream(), refreshProjects(), refreshWebhooks(() => gen === state.gen)]).catch(refreshFailed);
}

/** Live updates over fetch (the key rides in a header): progress ticks patch rows in place; status changes reload the table. */
function connectEvents(): void {
  stopEvents?.();
  const conn = byId('conn');
  conn.textContent = 'connecting…';
  conn.className = 'pill';
  let reload: number | null = null;
  const soon = (): void => {
    reload ??= window.setTimeout(() => {
      reload = null;
      reloadTable();
      // A batch that ended queued its webhook deliveries: show them as they go out.
      const gen = state.gen;
      void refreshWebhooks(() => gen === state.gen).catch(refreshFailed);
    }, 300);
  };
  const close = streamEvents(scoped('/v1/events'), {
    onOpen: () => {
      conn.textContent = 'live';
      conn.className = 'pill live';
    },
    onDown: () => {
      conn.textContent = 'reconnecting…';
      conn.className = 'pill down';
    },
    onMessage: (m) => {
      if (!state.auto) return;
      let data: unknown;
      try {
        data = JSON.parse(m.data);
      } catch {
        return;
      }
      if (m.event === 'progress') applyProgress(rows, data as Progress);
      else if (m.event === 'engine') renderEngine(data as EngineView);
      else if (m.event === 'status' || m.event === 'deleted') soon();
    },
  });
  stopEvents = () => {
    close();
    if (reload !== null) clearTimeout(reload);
    reload = null;
  };
}

// ---- Who is signed in ----------------------------------------------------------------------------

function whoText(me: Principal): string {
  if (me.auth === 'open') return 'open mode · no API keys';
  return me.admin ? `admin key · ${me.project}` : `project ${me.project} · project key`;
}

function signedIn(me: Principal): void {
  state.me = me;
  state.gen++;
  state.page = 1;
  byId('login').hidden = true;
  byId('unreachable').hidden = true;
  byId('app').hidden = false;
  byId('controls').hidden = false;
  byId('open-banner').hidden = me.auth !== 'open';
  const who = byId('who');
  who.hidden = false;
  who.textContent = whoText(me);
  who.title = me.key_id ? `key ${me.key_id}` : 'every request acts as an admin';
  who.className = `pill who ${me.admin ? 'admin' : 'project'}`;
  byId('signout').hidden = !hasKey();
  byId('project-filter').hidden = !me.admin;
  if (me.admin) {
    state.project = localStorage.getItem(PROJECT_STORAGE) ?? '';
    const select = byId<HTMLSelectElement>('project');
    if (state.project !== '' && ![...select.options].some((o) => o.value === state.project)) select.append(h('option', { value: state.project }, state.project));
    select.value = state.project;
  } else {
    state.project = '';
  }
  setViewProject(state.project);
  renderUploadTarget();
  connectEvents();
  void refreshAll();
}

function renderUploadTarget(): void {
  const me = state.me;
  byId('upload-project').textContent = me ? `→ project ${uploadProject() ?? me.project}` : '';
}

/** Removes every piece of data from the page (signed out: nothing stays readable). */
function clearData(): void {
  stopEvents?.();
  stopEvents = null;
  rows.replaceChildren();
  clearWebhooks();
  byId('cards').replaceChildren();
  for (const id of ['eng-inflight', 'eng-active', 'eng-queued', 'eng-upstream']) byId(id).textContent = '–';
  byId('eng-project').textContent = '';
  byId('eng-queue').replaceChildren();
  byId('eng-bar').style.width = '0';
  byId('page-info').textContent = '';
  byId('upload-msg').textContent = '';
  byId('upload-project').textContent = '';
  byId('th-project').hidden = true;
  byId<HTMLSelectElement>('project').replaceChildren(h('option', { value: '' }, 'All projects'));
  const detail = byId<HTMLDialogElement>('detail');
  if (detail.open) detail.close();
  byId('detail-body').replaceChildren();
  for (const c of Object.values(charts)) c.clear();
}

/** Back to the key form, with a message (the server's, for a refused key). */
function signOut(message: string): void {
  state.me = null;
  state.gen++;
  clearData();
  byId('app').hidden = true;
  byId('controls').hidden = true;
  byId('who').hidden = true;
  byId('open-banner').hidden = true;
  byId('unreachable').hidden = true;
  const conn = byId('conn');
  conn.textContent = 'no key';
  conn.className = 'pill down';
  byId('login').hidden = false;
  byId('key-msg').textContent = message;
  byId<HTMLButtonElement>('key-submit').disabled = false;
  byId<HTMLInputElement>('key-input').focus();
}

/** Asks the server who we are; shows the page, the key form, or "unreachable" (and tries again). */
async function boot(note = ''): Promise<void> {
  try {
    signedIn(await getMe());
  } catch (err) {
    if (err instanceof AuthError) {
      // A remembered key that is refused (revoked, or from another BESH) is of no more use.
      const refused = hasKey();
      forgetKey();
      signOut(refused ? err.message : note);
      return;
    }
    const el = byId('unreachable');
    el.hidden = false;
    el.textContent = `BESH is not answering (${err instanceof Error ? err.message : String(err)}); trying again…`;
    window.setTimeout(() => void boot(note), 5000);
  }
}

function setupKeyForm(): void {
  const form = byId<HTMLFormElement>('key-form');
  const input = byId<HTMLInputElement>('key-input');
  const submit = byId<HTMLButtonElement>('key-submit');
  const msg = byId('key-msg');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!wellFormedKey(key)) {
      msg.textContent = 'That is not an API key (printable characters, no spaces).';
      return;
    }
    submit.disabled = true;
    msg.textContent = 'Checking…';
    useKey(key, false);
    getMe().then(
      (me) => {
        useKey(key, true);
        input.value = '';
        msg.textContent = '';
        signedIn(me);
      },
      (err: unknown) => {
        forgetKey();
        submit.disabled = false;
        msg.textContent = err instanceof Error ? err.message : String(err);
        input.select();
      },
    );
  });
  byId('signout').addEventListener('click', () => {
    forgetKey();
    state.me = null;
    state.gen++;
    clearData();
    void boot('Key forgotten.');
  });
  // Another tab signed in or forgot the key: follow it (the same browser, the same key).
  window.addEventListener('storage', (e) => {
    if ((e.key !== KEY_STORAGE && e.key !== null) || !syncStoredKey()) return;
    state.me = null;
    state.gen++;
    clearData();
    void boot(hasKey() ? '' : 'The key was forgotten in another tab.');
  });
  // Any 401 (a key revoked meanwhile, or the server restarted with keys): back to the form.
  onUnauthorized((err) => {
    if (state.me === null) return;
    forgetKey();
    signOut(err.message);
  });
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
  const project = byId<HTMLSelectElement>('project');
  project.addEventListener('change', () => {
    state.project = project.value;
    localStorage.setItem(PROJECT_STORAGE, project.value);
    setViewProject(project.value);
    state.gen++;
    state.page = 1;
    renderUploadTarget();
    connectEvents();
    void refreshAll();
  });
  const filter = byId<HTMLSelectElement>('filter');
  filter.append(...STATUSES.map((s) => h('option', { value: s }, s)));
  filter.addEventListener('change', () => {
    state.status = filter.value;
    state.page = 1;
    reloadTable();
  });
  byId('prev').addEventListener('click', () => {
    state.page = Math.max(1, state.page - 1);
    reloadTable();
  });
  byId('next').addEventListener('click', () => {
    state.page++;
    reloadTable();
  });
  byId('detail-close').addEventListener('click', () => byId<HTMLDialogElement>('detail').close());
}

setupControls();
setupKeyForm();
setupUpload(() => void refreshAll(), uploadProject);
void boot();
setInterval(() => {
  if (state.auto) void refreshAll();
}, REFRESH_MS);
