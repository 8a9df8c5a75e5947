import { type BatchObject, createBatch, uploadFile, waitForBatch } from './besh-client.js';
import { int, megabytes, seconds } from './format.js';
import { RssSampler, type RssSummary } from './rss-sampler.js';
import type { Stack } from './stack.js';

export interface BatchRun {
  /** From the POST /v1/batches answer to the poll that saw `completed`; upload excluded. */
  elapsedMs: number;
  batch: BatchObject;
  /** BESH's memory over upload and run. */
  rss: RssSummary;
}

const POLL_MS = 100;
const PROGRESS_EVERY_MS = 10_000;

/** Uploads `inputPath` (`count` lines), runs it as a batch and checks every request completed. */
export async function runBatch(stack: Stack, inputPath: string, count: number, log: (msg: string) => void): Promise<BatchRun> {
  const { url } = stack.besh;
  const sampler = new RssSampler(stack.besh.pid).start();
  try {
    const file = await uploadFile(url, inputPath);
    log(`  uploaded: RSS ${rssNow(sampler)}`);
    const created = await createBatch(url, file.id);
    const t0 = performance.now();
    let nextProgress = t0 + PROGRESS_EVERY_MS;
    let status = created.status;
    // Status changes and RSS along the way show where time and memory go (validation vs run).
    const { batch, doneAt } = await waitForBatch(url, created.id, {
      intervalMs: POLL_MS,
      timeoutMs: 60_000 + count * 2,
      onPoll: (b) => {
        const now = performance.now();
        const c = b.request_counts;
        if (b.status !== status) {
          status = b.status;
          log(`  → ${status} at ${seconds(now - t0)}; ${int(c.completed)} completed; RSS ${rssNow(sampler)}`);
        } else if (now >= nextProgress) {
          log(`  … ${status} at ${seconds(now - t0)}: ${int(c.completed)} / ${int(count)} completed, ${int(c.failed)} failed; RSS ${rssNow(sampler)}`);
        } else {
          return;
        }
        nextProgress = now + PROGRESS_EVERY_MS;
      },
    });
    const rss = await sampler.stop();
    const c = batch.request_counts;
    if (batch.status !== 'completed' || c.completed !== count || c.failed !== 0) {
      const errors = batch.errors?.data.map((e) => `${e.code ?? '?'}: ${e.message ?? ''}`).join('; ') ?? 'none';
      throw new Error(`batch ${batch.id} ended '${batch.status}' with ${c.completed} completed, ${c.failed} failed of ${c.total} (expected ${count}); errors: ${errors}`);
    }
    return { elapsedMs: doneAt - t0, batch, rss };
  } finally {
    await sampler.stop();
  }
}

const rssNow = (s: RssSampler): string => `${megabytes(s.current.rssBytes)} (peak so far ${megabytes(s.current.peakBytes)})`;
