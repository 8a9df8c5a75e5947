import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { percentile, runInteractive } from './bare-client.js';
import { type BatchObject, createBatch, getBatch, uploadFile, waitForBatch } from './besh-client.js';
import { fixed, int, percent, seconds } from './format.js';
import { measureBesh, withBesh } from './gpu-run.js';
import { postJson } from './http.js';
import { writeShortChatFile } from './prefix-workload.js';
import type { Scenario, ScenarioContext } from './scenarios.js';
import type { Service } from './services.js';
import { H100, scrapeVllm, startVllmMock, type VllmFlags } from './vllm-mock.js';

const size = (full: number, divisor: number): number => Math.max(1, Math.round(full / divisor));

async function withMock<T>(ctx: ScenarioContext, flags: VllmFlags, fn: (mock: Service) => Promise<T>): Promise<T> {
  const mock = await startVllmMock(ctx.dir, flags);
  try {
    return await fn(mock);
  } finally {
    await mock.stop();
  }
}

/**
 * MAX_WORKERS=auto on the vLLM-shaped mock, where the pool steers by the server's /metrics
 * (LoadSignalLimit), against the best fixed MAX_WORKERS. The server is the docs' H100 with
 * vLLM's default --max-num-seqs 256; the batch is short chat requests (30-token prompts, 1..32
 * generated tokens), ~15 s at the server's best rate, so a controller's ramp-up counts but does
 * not dominate (a real batch runs for minutes to hours).
 *
 * The sweep goes down from 512: a continuous-batching server's rate only grows with the
 * requests it is given (n / (1 + f (n − 1)) in the mock), so once a value falls below 80 % of
 * the best so far, the smaller ones are slower still and are not run. Every run is on a fresh
 * mock with the same flags.
 */
const AUTO_FLAGS: VllmFlags = { ...H100 };
const SWEEP = [512, 256, 128, 64, 32, 16];
const AUTO_RUNS = 5;

export const autoVllm: Scenario = {
  title: (d) => `auto-vllm: ${int(size(3300, d))} short chat requests, 1 vLLM-shaped mock (H100 flags, 256 seqs): MAX_WORKERS=auto × ${AUTO_RUNS} vs best fixed of ${SWEEP.join(', ')}`,
  target: `auto ≥ 0.95 × best fixed in ${AUTO_RUNS} of ${AUTO_RUNS} runs`,
  async run(ctx) {
    const n = size(3300, ctx.divisor);
    const input = join(ctx.dir, 'input.jsonl');
    await writeShortChatFile(input, n, { promptTokens: 30, maxTokens: 32, ignoreEos: false, tag: 'a' });
    const rate = async (label: string, maxWorkers: number | 'auto'): Promise<number> =>
      withMock(ctx, AUTO_FLAGS, async (m) => {
        const r = await measureBesh(ctx, { upstreamBase: `${m.url}/v1`, maxWorkers }, input, n, [m.url]);
        const rps = n / (r.elapsedMs / 1000);
        ctx.log(`  ${label}: ${int(rps)} req/s (${seconds(r.elapsedMs)}), ${int(r.tokensPerSecond)} tokens/s`);
        return rps;
      });
    const sweep: Array<[number, number]> = [];
    let best = 0;
    let bestW = 0;
    for (const w of SWEEP) {
      const r = await rate(`MAX_WORKERS ${w}`, w);
      sweep.push([w, r]);
      if (r > best) [best, bestW] = [r, w];
      if (r < 0.8 * best) break;
    }
    const autos: number[] = [];
    for (let i = 1; i <= AUTO_RUNS; i++) autos.push((await rate(`MAX_WORKERS auto, run ${i}`, 'auto')) / best);
    const good = autos.filter((a) => a >= 0.95).length;
    return {
      figure: `auto runs ${autos.map((a) => fixed(a, 3)).join(', ')} × best fixed (MAX_WORKERS ${bestW}: ${int(best)} req/s); ${good} of ${AUTO_RUNS} ≥ 0.95; sweep ${sweep.map(([w, r]) => `${w}→${int(r)}`).join(', ')} req/s`,
      pass: good === AUTO_RUNS,
    };
  },
};

/**
 * Interactive users beside a big batch on one server. 8 users in a closed loop (no think time),
 * each sending a 200-token chat prompt and reading 64 generated tokens (`ignore_eos`, so every
 * request costs the same): a chat front-end's load, 8 of the server's 256 sequences. Their p99
 * latency alone is the baseline; then BESH runs a batch of short requests against the same
 * server with MAX_WORKERS=auto (the pool steers on the server's /metrics) in three settings:
 *  - BESH_UPSTREAM_MAX_SLOWDOWN 1.4: BESH keeps the server's inter-token latency within 1.4 × the
 *    lowest it measured (the target setting), and 2 (the trade-off's other end);
 *  - no setting: BESH's full rate, the denominator of its share;
 *  - BESH_UPSTREAM_HEADROOM 0.25: a quarter of the batch size left free. On a continuous-batching
 *    server every running sequence slows every other one's decode steps
 *    (--decode-growth-per-seq), so free slots alone do not keep the users' latency: shown to say
 *    why the slowdown bound exists.
 *
 * Each phase: BESH's batch first runs for RAMP_S (its controller settles), then the users run
 * for MEASURE_S; BESH's throughput is the server's generated tokens in that window minus the
 * users' own.
 */
const INTERACTIVE_FLAGS: VllmFlags = { ...H100 };
const USERS = 8;
const USER_PROMPT_TOKENS = 200;
const USER_OUTPUT_TOKENS = 64;
const MAX_SLOWDOWN = 1.4;
/** A looser bound, for the other end of the trade-off. */
const LOOSE_SLOWDOWN = 2;
const HEADROOM = 0.25;
const RAMP_S = 8;
const MEASURE_S = 20;

function userBody(i: number): string {
  const text = `User ${i} asks: ${'please summarise the last message in two lines '.repeat(Math.ceil((USER_PROMPT_TOKENS * 4) / 48))}`.slice(0, USER_PROMPT_TOKENS * 4);
  return JSON.stringify({ model: 'mock-model', messages: [{ role: 'user', content: text }], max_tokens: USER_OUTPUT_TOKENS, ignore_eos: true });
}

interface Phase {
  p99: number;
  p50: number;
  requests: number;
  /** BESH's generated tokens per second in the window (null: no BESH). */
  beshTokensPerSecond: number | null;
}

async function usersFor(mockUrl: string, seconds_: number): Promise<{ latencies: number[]; ms: number; generated: number }> {
  const stop = new AbortController();
  const before = await scrapeVllm(mockUrl);
  const t0 = performance.now();
  const timer = setTimeout(() => stop.abort(), seconds_ * 1000);
  try {
    const r = await runInteractive(mockUrl, { clients: USERS, body: userBody, thinkMs: 0, stop: stop.signal });
    if (r.failures > 0) throw new Error(`interactive users: ${r.failures} requests failed`);
    const ms = performance.now() - t0;
    const after = await scrapeVllm(mockUrl);
    return { latencies: r.latencies, ms, generated: after.generationTokens - before.generationTokens };
  } finally {
    clearTimeout(timer);
  }
}

export const interactive: Scenario = {
  title: () =>
    `interactive: ${USERS} chat users (${USER_PROMPT_TOKENS}-token prompts, ${USER_OUTPUT_TOKENS} tokens out) on 1 vLLM-shaped mock (H100 flags, 256 seqs), alone vs beside a BESH batch (MAX_WORKERS=auto) with BESH_UPSTREAM_MAX_SLOWDOWN ${MAX_SLOWDOWN} and ${LOOSE_SLOWDOWN}, with nothing set, and with BESH_UPSTREAM_HEADROOM ${HEADROOM}`,
  target: `users' p99 ≤ 1.5 × alone with BESH_UPSTREAM_MAX_SLOWDOWN ${MAX_SLOWDOWN}`,
  async run(ctx) {
    const measureS = Math.max(4, MEASURE_S / ctx.divisor);
    const batchLines = size(40_000, ctx.divisor);
    const input = join(ctx.dir, 'batch.jsonl');
    await writeShortChatFile(input, batchLines, { promptTokens: 30, maxTokens: 32, ignoreEos: false, tag: 'b' });

    const alone = await withMock(ctx, INTERACTIVE_FLAGS, async (m) => {
      const u = await usersFor(m.url, measureS);
      return { p99: percentile(u.latencies, 99), p50: percentile(u.latencies, 50), requests: u.latencies.length, beshTokensPerSecond: null } satisfies Phase;
    });
    ctx.log(`  alone: p50 ${int(alone.p50)} ms, p99 ${int(alone.p99)} ms (${alone.requests} requests)`);

    const beside = (label: string, env: Record<string, string>): Promise<Phase> =>
      withMock(ctx, INTERACTIVE_FLAGS, (m) =>
        withBesh(ctx, { upstreamBase: `${m.url}/v1`, maxWorkers: 'auto', env }, async (besh) => {
          const file = await uploadFile(besh.url, input);
          const batch = await createBatch(besh.url, file.id);
          try {
            await sleep(RAMP_S * 1000);
            const u = await usersFor(m.url, measureS);
            const b = await getBatch(besh.url, batch.id);
            if (b.status !== 'in_progress') throw new Error(`the batch was ${b.status} by the end of the window: make it longer`);
            const beshTokens = u.generated - u.latencies.length * USER_OUTPUT_TOKENS;
            const phase: Phase = { p99: percentile(u.latencies, 99), p50: percentile(u.latencies, 50), requests: u.latencies.length, beshTokensPerSecond: beshTokens / (u.ms / 1000) };
            ctx.log(`  beside BESH, ${label}: p50 ${int(phase.p50)} ms, p99 ${int(phase.p99)} ms (${phase.requests} requests); BESH ${int(phase.beshTokensPerSecond!)} generated tokens/s`);
            return phase;
          } finally {
            await postJson(`${besh.url}/v1/batches/${batch.id}/cancel`, {}).catch(() => undefined);
          }
        }),
      );
    const bounded = await beside(`max slowdown ${MAX_SLOWDOWN}`, { BESH_UPSTREAM_MAX_SLOWDOWN: String(MAX_SLOWDOWN) });
    const loose = await beside(`max slowdown ${LOOSE_SLOWDOWN}`, { BESH_UPSTREAM_MAX_SLOWDOWN: String(LOOSE_SLOWDOWN) });
    const unbounded = await beside('nothing set', {});
    const slots = await beside(`headroom ${HEADROOM}`, { BESH_UPSTREAM_HEADROOM: String(HEADROOM) });
    const vs = (p: Phase): string =>
      `p99 ${int(p.p99)} ms = ${fixed(p.p99 / alone.p99, 2)} × alone, BESH ${int(p.beshTokensPerSecond!)} tokens/s = ${percent(p.beshTokensPerSecond! / unbounded.beshTokensPerSecond!)} of its rate with nothing set`;
    return {
      figure: `users' p99 alone ${int(alone.p99)} ms; beside BESH with max slowdown ${MAX_SLOWDOWN}: ${vs(bounded)}; max slowdown ${LOOSE_SLOWDOWN}: ${vs(loose)}; nothing set: p99 ${int(unbounded.p99)} ms = ${fixed(unbounded.p99 / alone.p99, 2)} × alone, BESH ${int(unbounded.beshTokensPerSecond!)} tokens/s; headroom ${HEADROOM}: ${vs(slots)}`,
      pass: bounded.p99 / alone.p99 <= 1.5,
    };
  },
};

/**
 * Earliest deadline first between one project's batches. The server (the docs' H100 flags, 256
 * sequences) is the bottleneck: MAX_WORKERS 256 = its --max-num-seqs, so requests wait in BESH's
 * fair slots, not in the server's queue. A long batch (1 h window, ~50 s of the server's time) is
 * submitted first; 5 s into it, a short batch (~9 s of the server's time alone) with
 *  - a 15 s window: EDF gives it the slots as they free up, and it ends before its deadline;
 *  - a 1 h window: as due as the long batch (deadlines count by the power of two of the time
 *    left), so the two share the slots round-robin: about half the rate, past 15 s;
 *  - a 24 h window: due after the long batch, so it waits for it, as under FIFO.
 */
const DEADLINE_FLAGS: VllmFlags = { ...H100 };
const DEADLINE_WORKERS = 256;
const SHORT_WINDOW_S = 15;
const LONG_LEAD_S = 5;

interface Timed extends BatchObject {
  created_at: number;
}

/** When (Date.now()) the batch was seen completed, polling every 100 ms. */
async function completedAt(url: string, id: string, timeoutMs: number): Promise<number> {
  const { batch } = await waitForBatch(url, id, { intervalMs: 100, timeoutMs });
  if (batch.status !== 'completed' || batch.request_counts.failed > 0) throw new Error(`batch ${id} ended ${batch.status} (${batch.request_counts.completed} completed, ${batch.request_counts.failed} failed)`);
  return Date.now();
}

export const deadline: Scenario = {
  title: (d) =>
    `deadline: one project, a ${int(size(11_000, d))}-request batch (1h) then, ${LONG_LEAD_S} s later, a ${int(size(2000, d))}-request batch with a ${Math.max(3, Math.round(SHORT_WINDOW_S / d))}s, 1h or 24h window, 1 vLLM-shaped mock (H100 flags, 256 seqs), MAX_WORKERS ${DEADLINE_WORKERS}`,
  target: `the ${SHORT_WINDOW_S}s batch completes before its deadline`,
  async run(ctx) {
    const longN = size(11_000, ctx.divisor);
    const shortN = size(2000, ctx.divisor);
    const window = Math.max(3, Math.round(SHORT_WINDOW_S / ctx.divisor));
    const longPath = join(ctx.dir, 'long.jsonl');
    const shortPath = join(ctx.dir, 'short.jsonl');
    await writeShortChatFile(longPath, longN, { promptTokens: 30, maxTokens: 32, ignoreEos: false, tag: 'long' });
    await writeShortChatFile(shortPath, shortN, { promptTokens: 30, maxTokens: 32, ignoreEos: false, tag: 'short' });

    /**
     * Submits both; returns how long after its creation the short batch completed, and how much
     * time was left then before `window` seconds from its created_at (BESH's expires_at when it
     * was submitted with that window).
     */
    const race = (shortWindow: string): Promise<{ finishedS: number; slackS: number }> =>
      withMock(ctx, DEADLINE_FLAGS, (m) =>
        withBesh(ctx, { upstreamBase: `${m.url}/v1`, maxWorkers: DEADLINE_WORKERS }, async (besh) => {
          const [longFile, shortFile] = [await uploadFile(besh.url, longPath), await uploadFile(besh.url, shortPath)];
          const long = await createBatch(besh.url, longFile.id, '1h');
          await sleep(LONG_LEAD_S * 1000);
          const createdMs = Date.now();
          const short = (await createBatch(besh.url, shortFile.id, shortWindow)) as Timed;
          try {
            const doneAt = await completedAt(besh.url, short.id, 300_000);
            return { finishedS: (doneAt - createdMs) / 1000, slackS: (short.created_at * 1000 + window * 1000 - doneAt) / 1000 };
          } finally {
            await postJson(`${besh.url}/v1/batches/${long.id}/cancel`, {}).catch(() => undefined);
          }
        }),
      );
    const edf = await race(`${window}s`);
    ctx.log(`  ${window}s window (EDF): completed ${fixed(edf.finishedS, 1)} s after it was submitted, ${fixed(edf.slackS, 1)} s before its deadline`);
    const shared = await race('1h');
    ctx.log(`  1h window (as due as the long batch: round-robin): completed ${fixed(shared.finishedS, 1)} s after it was submitted`);
    const behind = await race('24h');
    ctx.log(`  24h window (due after the long batch, as FIFO): completed ${fixed(behind.finishedS, 1)} s after it was submitted`);
    const vsWindow = (r: { finishedS: number }): string => (r.finishedS > window ? `${fixed(r.finishedS - window, 1)} s past ${window} s` : `within ${window} s`);
    return {
      figure:
        `${window}s window (EDF): completed ${fixed(edf.finishedS, 1)} s after submission, ${fixed(edf.slackS, 1)} s before its deadline; ` +
        `the same batch with a 1h window (round-robin with the long one): ${fixed(shared.finishedS, 1)} s (${vsWindow(shared)}); with 24h (behind it, as FIFO): ${fixed(behind.finishedS, 1)} s (${vsWindow(behind)})`,
      pass: edf.slackS > 0,
    };
  },
};
