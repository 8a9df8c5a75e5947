import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';

const TOKEN = 'metrics-token-123';

let mock: MockServer;
let besh: BeshProcess;
const dir = tempDir();

beforeAll(async () => {
  mock = await startMockServer({ host: '127.0.0.1', port: 0 });
  besh = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, BESH_METRICS_TOKEN: TOKEN, LOG_LEVEL: 'warn' }, { dataDir: dir.path });
});

afterAll(async () => {
  await besh?.stop();
  await mock?.close();
  dir.remove();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A strict reader of the Prometheus text exposition format (0.0.4): throws on any line it does not understand. */
function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const sampleRe = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (-?[0-9.eE+-]+|[Nn]a[Nn]|[+-]Inf)(?: -?\\d+)?$`);
  const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${NAME}) .*$`).exec(line))) continue;
    if ((m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line))) {
      types.set(m[1]!, m[2]!);
      continue;
    }
    m = sampleRe.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    const rest = (m[2] ?? '').replace(labelRe, (_all, k: string, v: string) => {
      labels[k] = v;
      return '';
    });
    if (rest.replace(/,/g, '').trim() !== '') throw new Error(`bad labels: ${JSON.stringify(line)}`);
    samples.push({ name: m[1]!, labels, value: Number(m[3]!.replace('Inf', 'Infinity')) });
  }
  return { samples, types };
}

async function scrape(): Promise<{ samples: Sample[]; types: Map<string, string> }> {
  const r = await fetch(`${besh.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await r.text());
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}): number =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);

describe('GET /metrics', () => {
  it('requires the metrics token when BESH_METRICS_TOKEN is set', async () => {
    for (const authorization of [undefined, 'Bearer wrong', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`]) {
      const r = await fetch(`${besh.url}/metrics`, { headers: authorization ? { authorization } : {} });
      expect(r.status, String(authorization)).toBe(401);
      expect(await r.json()).toEqual({ error: expect.objectContaining({ type: 'authentication_error', code: 'invalid_metrics_token' }) });
    }
  });

  it('is Prometheus text with the BESH series and Node defaults', async () => {
    const { samples, types } = await scrape();
    for (const [name, type] of [
      ['besh_upstream_requests_total', 'counter'],
      ['besh_upstream_retries_total', 'counter'],
      ['besh_upstream_request_duration_seconds', 'histogram'],
      ['besh_upstream_in_flight', 'gauge'],
      ['besh_batches', 'gauge'],
      ['besh_queue_depth', 'gauge'],
      ['besh_tokens_total', 'counter'],
      ['besh_stored_bytes', 'gauge'],
      ['besh_upload_bytes_total', 'counter'],
      ['process_cpu_user_seconds_total', 'counter'],
      ['nodejs_heap_size_used_bytes', 'gauge'],
    ]) {
      expect(types.get(name!), name).toBe(type);
    }
    expect(samples.find((s) => s.name === 'besh_upstream_in_flight')?.labels.upstream).toBe(`${mock.url}/v1`);
    expect(value(samples, 'besh_batches', { status: 'completed' })).toBe(0);
  });

  it('moves when a batch runs', async () => {
    const before = (await scrape()).samples;
    const c = besh.client;
    const text = chatLines(6, { marker: (i) => (i === 5 ? 'MOCK_FAIL_400' : undefined) });
    const input = await upload(c, text);
    const batch = await c.batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitDone(c, batch.id, 20_000);
    expect(done.status).toBe('completed');
    const after = (await scrape()).samples;
    const delta = (name: string, labels?: Record<string, string>): number => value(after, name, labels) - value(before, name, labels);

    expect(delta('besh_upstream_requests_total', { outcome: 'success', status_code: '200' })).toBe(5);
    expect(delta('besh_upstream_requests_total', { outcome: 'failure', status_code: '400' })).toBe(1);
    expect(delta('besh_upstream_request_duration_seconds_count')).toBe(6);
    expect(delta('besh_tokens_total', { direction: 'input' })).toBe(done.usage!.input_tokens);
    expect(delta('besh_tokens_total', { direction: 'output' })).toBe(done.usage!.output_tokens);
    expect(delta('besh_tokens_total', { direction: 'output' })).toBeGreaterThan(0);
    expect(delta('besh_upload_bytes_total')).toBe(Buffer.byteLength(text));
    // Per project: without keys everything is the default project's.
    expect(delta('besh_project_requests_total', { project: 'default', outcome: 'success' })).toBe(5);
    expect(delta('besh_project_requests_total', { project: 'default', outcome: 'failure' })).toBe(1);
    expect(delta('besh_project_tokens_total', { project: 'default', direction: 'output' })).toBe(done.usage!.output_tokens);
    expect(after.filter((s) => s.name === 'besh_project_in_flight' && s.labels.project === 'default').map((s) => s.value)).toEqual([0]);
    expect(value(after, 'besh_project_stored_bytes', { project: 'default' })).toBeGreaterThan(Buffer.byteLength(text));
    expect(value(after, 'besh_batches', { status: 'completed' })).toBe(1);
    expect(value(after, 'besh_stored_bytes', { purpose: 'batch' })).toBe(Buffer.byteLength(text));
    expect(value(after, 'besh_stored_bytes', { purpose: 'batch_output' })).toBeGreaterThan(0);
    expect(value(after, 'besh_queue_depth')).toBe(0);
    expect(value(after, 'besh_upstream_in_flight')).toBe(0);
  });
});
