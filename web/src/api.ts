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
  elapsed_seconds: number;
  input_tokens: number;
  output_tokens: number;
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
}

export interface EngineView {
  state: string;
  in_flight: number;
  max_workers: number;
  utilisation: number;
  active_batches: number;
  queue: Array<{ id: string; position: number }>;
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

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  const r = await fetch(path, init);
  const body = (await r.json().catch(() => null)) as (T & { error?: { message?: string } }) | null;
  if (!r.ok) throw new Error(body?.error?.message ?? `${r.status} ${r.statusText}`);
  return body as T;
}

export const getJson = <T>(path: string): Promise<T> => call<T>(path);
export const cancelBatch = (id: string): Promise<DashBatch> => call(`/v1/batches/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
export const deleteBatch = (id: string): Promise<unknown> => call(`/v1/batches/${encodeURIComponent(id)}`, { method: 'DELETE' });
export const createBatch = (inputFileId: string, endpoint: string, window: string): Promise<DashBatch> =>
  call('/v1/batches', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input_file_id: inputFileId, endpoint, completion_window: window }) });

/** POST /v1/files with XMLHttpRequest so the upload reports progress. */
export function uploadFile(file: File, onProgress: (fraction: number) => void): Promise<{ id: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/v1/files');
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener('load', () => {
      let body: { id?: string; bytes?: number; error?: { message?: string } } = {};
      try {
        body = JSON.parse(xhr.responseText) as typeof body;
      } catch {
        /* not JSON */
      }
      if (xhr.status === 200 && body.id) resolve({ id: body.id, bytes: body.bytes ?? 0 });
      else reject(new Error(body.error?.message ?? `upload failed (${xhr.status})`));
    });
    xhr.addEventListener('error', () => reject(new Error('upload failed: network error')));
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', file, file.name);
    xhr.send(form);
  });
}

/** The first lines of a file's content (errors in the detail view). */
export async function firstLines(fileId: string, n: number): Promise<string[]> {
  const r = await fetch(`/v1/files/${encodeURIComponent(fileId)}/content`);
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
