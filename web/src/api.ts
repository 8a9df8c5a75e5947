import { authHeaders } from './key-store.js';

export interface Counts {
  total: number;
  completed: number;
  failed: number;
}

export interface DashBatch {
  id: string;
  status: string;
  endpoint: string;
  model: string | null;
  input_file_id: string;
  output_file_id: string | null;
  error_file_id: string | null;
  metadata: Record<string, string> | null;
  errors: { data: Array<{ code: string; message: string; line: number | null }> } | null;
  created_at: number;
  in_progress_at: number | null;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  expired_at: number | null;
  expires_at: number;
  request_counts: Counts;
  queue_position: number | null;
  in_flight: number;
  progress: number;
  error_rate: number;
  requests_per_second: number;
  eta_seconds: number | null;
  /** At the current rate it would finish after expires_at (servers before it did not send it). */
  deadline_at_risk?: boolean;
  elapsed_seconds: number;
  input_tokens: number;
  output_tokens: number;
  /** The project the batch belongs to (servers before keys did not send it). */
  project?: string;
}

export interface Progress {
  id: string;
  request_counts: Counts;
  in_flight: number;
  input_tokens: number;
  output_tokens: number;
  progress: number;
  error_rate: number;
  requests_per_second: number;
  eta_seconds: number | null;
  deadline_at_risk?: boolean;
}

export interface EngineView {
  state: string;
  in_flight: number;
  max_workers: number;
  utilisation: number;
  active_batches: number;
  queue: Array<{ id: string; position: number; project?: string }>;
  /** Present when the view is scoped to one project. */
  project?: string;
  project_in_flight?: number;
  project_active_batches?: number;
}

export interface Summary {
  batches_by_status: Record<string, number>;
  batches_created: number;
  requests_completed: number;
  requests_failed: number;
  error_rate: number;
  input_tokens: number;
  output_tokens: number;
  uploads: number;
  upload_bytes: number;
  avg_batch_duration_seconds: number;
  avg_latency_ms: number;
}

export interface Dashboard {
  data: DashBatch[];
  page: number;
  limit: number;
  total: number;
  has_more: boolean;
  summary: Summary;
  engine: EngineView;
}

export interface Series<T> {
  interval_seconds: number;
  data: Array<T & { timestamp: number }>;
}

export type Live = Series<{ requests_per_second: number; tokens_per_second: number; requests_failed: number }> & { engine: EngineView };
export type Timeline = Series<{ batches_created: number; requests_completed: number; requests_failed: number; uploads: number; upload_bytes: number }>;


export interface Principal {
  object: 'principal';
  auth: 'open' | 'keys';
  project: string;
  admin: boolean;
  key_id: string | null;
}

export interface ProjectView {
  name: string;
  stored_bytes: number;
  active_batches: number;
  queued_requests: number;
  running_batches: number;
  in_flight: number;
  limits: { max_stored_bytes: number | null; max_active_batches: number | null; max_queued_requests: number | null };
}

/** A 401: no key, a wrong key or a revoked one. `message` is the server's (it never echoes the key). */
export class AuthError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

let unauthorized: (err: AuthError) => void = () => undefined;
/** Called on every 401 (the page shows the key form). */
export const onUnauthorized = (handler: (err: AuthError) => void): void => {
  unauthorized = handler;
};

interface ErrorBody {
  error?: { message?: string; code?: string | null };
}

async function authError(r: Response): Promise<AuthError> {
  const body = (await r.json().catch(() => null)) as ErrorBody | null;
  return new AuthError(body?.error?.message ?? 'This BESH needs an API key.', body?.error?.code ?? 'invalid_api_key');
}

/** fetch() with the key. Every call of the page goes through here (or sets the header itself). */
export async function apiFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(authHeaders())) headers.set(k, v);
  const r = await fetch(path, { ...init, headers });
  if (r.status === 401) {
    const err = await authError(r);
    unauthorized(err);
    throw err;
  }
  return r;
}

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  const r = await apiFetch(path, init);
  const body = (await r.json().catch(() => null)) as (T & ErrorBody) | null;
  if (!r.ok) throw new Error(body?.error?.message ?? `${r.status} ${r.statusText}`);
  return body as T;
}

/**
 * Who the key is. Unlike other calls a 401 here only throws (the key form handles it), so a
 * wrong key typed into the form is not treated as a lost session.
 */
export async function getMe(): Promise<Principal> {
  const r = await fetch('/v1/me', { headers: authHeaders(), cache: 'no-store' });
  if (r.status === 401) throw await authError(r);
  const body = (await r.json().catch(() => null)) as (Principal & ErrorBody) | null;
  if (!r.ok || body === null) throw new Error(body?.error?.message ?? `${r.status} ${r.statusText}`);
  return body;
}

// ---- The project in view ---------------------------------------------------------------------

let viewProject = '';
/** Admins: '' for all projects, or one project's name (added as ?project= to the views). */
export const setViewProject = (name: string): void => {
  viewProject = name;
};

/** A dashboard, analytics, status or events path scoped to the project in view. */
export function scoped(path: string): string {
  if (viewProject === '') return path;
  return `${path}${path.includes('?') ? '&' : '?'}project=${encodeURIComponent(viewProject)}`;
}

// ---- Calls -----------------------------------------------------------------------------------

export const getJson = <T>(path: string): Promise<T> => call<T>(path);
export const getProjects = async (): Promise<ProjectView[]> => (await call<{ data: ProjectView[] }>('/v1/projects')).data;
export const cancelBatch = (id: string): Promise<DashBatch> => call(`/v1/batches/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
export const deleteBatch = (id: string): Promise<unknown> => call(`/v1/batches/${encodeURIComponent(id)}`, { method: 'DELETE' });
export const createBatch = (inputFileId: string, endpoint: string, window: string): Promise<DashBatch> =>
  call('/v1/batches', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input_file_id: inputFileId, endpoint, completion_window: window }) });

/**
 * POST /v1/files with XMLHttpRequest so the upload reports progress. `project` (admins) puts the
 * file — and so the batch made from it — in that project (`OpenAI-Project`).
 */
export function uploadFile(file: File, project: string | null, onProgress: (fraction: number) => void): Promise<{ id: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/v1/files');
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    if (project !== null) xhr.setRequestHeader('OpenAI-Project', project);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener('load', () => {
      let body: { id?: string; bytes?: number; error?: { message?: string; code?: string } } = {};
      try {
        body = JSON.parse(xhr.responseText) as typeof body;
      } catch {
        /* not JSON */
      }
      if (xhr.status === 200 && body.id) return resolve({ id: body.id, bytes: body.bytes ?? 0 });
      const err = xhr.status === 401 ? new AuthError(body.error?.message ?? 'This BESH needs an API key.', body.error?.code ?? 'invalid_api_key') : null;
      if (err) unauthorized(err);
      reject(err ?? new Error(body.error?.message ?? `upload failed (${xhr.status})`));
    });
    xhr.addEventListener('error', () => reject(new Error('upload failed: network error')));
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', file, file.name);
    xhr.send(form);
  });
}

/**
 * Downloads a file's content with the key (a plain link cannot send it) and saves it under
 * `name` through a Blob object URL. The whole file passes through the page's memory: for very
 * large outputs the CLI or an SDK is the better tool.
 */
export async function downloadFile(fileId: string, name: string, onProgress?: (loaded: number, total: number | null) => void): Promise<void> {
  const r = await apiFetch(`/v1/files/${encodeURIComponent(fileId)}/content`, { cache: 'no-store' });
  if (!r.ok || !r.body) {
    const body = (await r.json().catch(() => null)) as ErrorBody | null;
    throw new Error(body?.error?.message ?? `download failed (${r.status})`);
  }
  const length = Number(r.headers.get('content-length'));
  const total = Number.isFinite(length) && length > 0 ? length : null;
  const reader = r.body.getReader();
  const parts: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.byteLength;
    onProgress?.(loaded, total);
  }
  const url = URL.createObjectURL(new Blob(parts as BlobPart[], { type: r.headers.get('content-type') ?? 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // Revoked later, not at once: the browser may still be reading it for the download.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The first lines of a file's content (errors in the detail view). */
export async function firstLines(fileId: string, n: number): Promise<string[]> {
  const r = await apiFetch(`/v1/files/${encodeURIComponent(fileId)}/content`);
  if (!r.ok || !r.body) return [];
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  while (text.split('\n').length <= n) {
    const { done, value } = await reader.read();
    if (done) break;
    text += value;
    if (text.length > 64 * 1024) break;
  }
  void reader.cancel();
  return text.split('\n').filter((l) => l.trim() !== '').slice(0, n);
}
