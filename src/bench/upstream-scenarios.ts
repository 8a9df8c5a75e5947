import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { runBatch } from './batch-run.js';
import { fixed, int, percent, seconds } from './format.js';
import { freePort } from './free-port.js';
import { writeRequestFile } from './input-file.js';
import type { Scenario, ScenarioContext } from './scenarios.js';
import { type Service, startBesh, startMock, startNginxService } from './services.js';

/**
 * Many upstreams: eight mocks shaped like GPUs (a capacity of requests processed at once and a
 * latency), reached through nginx (nginx-8gpu.conf) or through BESH's own pool; and
 * MAX_WORKERS=auto against the best hand-tuned MAX_WORKERS.
 */
const GPUS = 8;
const GPU_CAPACITY = 16;
const LATENCY_MS = 50;
const HOST = '127.0.0.1';
const NGINX_CONF = fileURLToPath(new URL('../../nginx-8gpu.conf', import.meta.url));
const MAX_FILE_BYTES = 1024 ** 3;
const size = (full: number, divisor: number): number => Math.round(full / divisor);

function nginxBinary(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v nginx || ls /usr/sbin/nginx'], { encoding: 'utf8' });
  const p = r.stdout.trim().split('\n')[0];
  return r.status === 0 && p ? p : null;
}

/** nginx-8gpu.conf with its upstreams, listen port, pid, logs and temp files made local. */
async function localNginxConf(dir: string, upstreams: string[], port: number): Promise<string> {
  let conf = await readFile(NGINX_CONF, 'utf8');
  let i = 0;
  conf = conf.replace(/server vllm-gpu\d:8000/g, () => `server ${upstreams[i++]}`);
  const tmp = join(dir, 'nginx-tmp');
  await mkdir(tmp, { recursive: true });
  conf = conf
    .replace(/listen 8000;/, `listen ${HOST}:${port};`)
    .replace(/^pid .*;$/m, `pid ${join(dir, 'nginx.pid')};`)
    .replace(/^error_log .*;$/m, `error_log ${join(dir, 'error.log')} warn;`)
    .replace(/^http \{$/m, `http {\n    client_body_temp_path ${tmp}/body;\n    proxy_temp_path ${tmp}/proxy;\n    fastcgi_temp_path ${tmp}/fastcgi;\n    uwsgi_temp_path ${tmp}/uwsgi;\n    scgi_temp_path ${tmp}/scgi;`);
  const file = join(dir, 'nginx.conf');
  await writeFile(file, `daemon off;\n${process.getuid?.() === 0 ? 'user root;\n' : ''}${conf}`);
  return file;
}

/** Starts BESH with `upstreamBase` and `maxWorkers`, runs the batch at `input`, returns req/s. */
async function measure(ctx: ScenarioContext, label: string, input: string, n: number, upstreamBase: string, maxWorkers: number | 'auto'): Promise<number> {
  const dataDir = join(ctx.dir, `data-${label.replace(/\W+/g, '-')}`);
  await mkdir(dataDir, { recursive: true });
  const besh = await startBesh({ dataDir, upstreamUrl: '', upstreamBase, maxWorkers, maxFileBytes: MAX_FILE_BYTES });
  try {
    const r = await runBatch({ besh, mock: null }, input, n, () => undefined);
    const rps = n / (r.elapsedMs / 1000);
    ctx.log(`  ${label}: ${int(rps)} req/s (${seconds(r.elapsedMs)})`);
    return rps;
  } catch (err) {
    if (err instanceof Error) err.message += `\n--- besh output (end) ---\n${besh.outputTail()}`;
    throw err;
  } finally {
    await besh.stop();
  }
}

async function startMocks(ctx: ScenarioContext, count: number, capacity: number): Promise<Service[]> {
  const mocks: Service[] = [];
  for (let i = 0; i < count; i++) mocks.push(await startMock(LATENCY_MS, ctx.dir, ['--capacity', String(capacity)], `mock${i}`));
  return mocks;
}

export const eightGpu: Scenario = {
  title: (d) => `eight-gpu: ${int(size(25_600, d))} requests, 8 mocks × capacity ${GPU_CAPACITY}, latency ${LATENCY_MS} ms: nginx vs built-in pool`,
  target: 'built-in pool ≥ 90 % of ideal (8 × capacity ÷ latency); nginx reported',
  async run(ctx) {
    const n = size(25_600, ctx.divisor);
    const ideal = (GPUS * GPU_CAPACITY * 1000) / LATENCY_MS;
    const input = join(ctx.dir, 'input.jsonl');
    await writeRequestFile(input, n, 0);
    const mocks = await startMocks(ctx, GPUS, GPU_CAPACITY);
    let nginx: Service | null = null;
    try {
      const workers = GPUS * GPU_CAPACITY;
      const results: string[] = [];
      const bin = nginxBinary();
      if (bin) {
        const port = await freePort(HOST);
        const conf = await localNginxConf(ctx.dir, mocks.map((m) => m.url.replace('http://', '')), port);
        nginx = await startNginxService(bin, ctx.dir, conf, port);
        const rps = await measure(ctx, `nginx, MAX_WORKERS ${workers}`, input, n, `${nginx.url}/v1`, workers);
        results.push(`nginx ${int(rps)} req/s (${percent(rps / ideal)})`);
        await nginx.stop();
        nginx = null;
      } else {
        results.push('nginx not installed');
      }
      const list = mocks.map((m) => `${m.url}/v1`).join(',');
      const pool = await measure(ctx, `pool, MAX_WORKERS ${workers}`, input, n, list, workers);
      results.push(`pool ${int(pool)} req/s (${percent(pool / ideal)})`);
      const pass = pool >= 0.9 * ideal;
      const auto = await measure(ctx, 'pool, MAX_WORKERS auto', input, n, list, 'auto');
      results.push(`pool auto ${int(auto)} req/s (${percent(auto / ideal)})`);
      return { figure: `${results.join(', ')}; ideal ${int(ideal)} req/s`, pass };
    } finally {
      await nginx?.stop();
      for (const m of mocks) await m.stop();
    }
  },
};

const ONE_CAPACITY = 64;

export const autoWorkers: Scenario = {
  title: (d) => `auto-workers: ${int(size(12_800, d))} requests, 1 mock × capacity ${ONE_CAPACITY}, latency ${LATENCY_MS} ms: MAX_WORKERS=auto vs best hand-tuned`,
  target: 'auto ≥ 95 % of the best hand-tuned',
  async run(ctx) {
    const n = size(12_800, ctx.divisor);
    const input = join(ctx.dir, 'input.jsonl');
    await writeRequestFile(input, n, 0);
    const [mock] = await startMocks(ctx, 1, ONE_CAPACITY);
    try {
      const base = `${mock!.url}/v1`;
      const tuned: Array<[number, number]> = [];
      for (const w of [48, 64, 80, 96, 128, 192]) tuned.push([w, await measure(ctx, `MAX_WORKERS ${w}`, input, n, base, w)]);
      const [bestW, best] = tuned.reduce((a, b) => (b[1] > a[1] ? b : a));
      const auto = await measure(ctx, 'MAX_WORKERS auto', input, n, base, 'auto');
      const ideal = (ONE_CAPACITY * 1000) / LATENCY_MS;
      return {
        figure: `auto ${int(auto)} req/s = ${percent(auto / best)} of best hand-tuned (MAX_WORKERS ${bestW}: ${int(best)} req/s); sweep ${tuned.map(([w, r]) => `${w}→${int(r)}`).join(', ')}; ideal ${int(ideal)} (${fixed(auto / ideal * 100, 1)} %)`,
        pass: auto >= 0.95 * best,
      };
    } finally {
      await mock?.stop();
    }
  },
};
