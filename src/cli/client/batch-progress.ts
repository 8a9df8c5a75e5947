import { formatDuration } from './format.js';
import { makeBar, progressEnabled } from './progress.js';
import type { Batch } from './types.js';

/** Requests per second over the last ~15 s of samples, so the ETA follows the current pace. */
export class RateMeter {
  readonly #samples: Array<{ t: number; done: number }> = [];

  constructor(readonly windowMs = 15_000) {}

  add(done: number, t = Date.now()): void {
    this.#samples.push({ t, done });
    while (this.#samples.length > 2 && t - this.#samples[0]!.t > this.windowMs) this.#samples.shift();
  }

  /** Requests per second, or null before two samples a little apart exist. */
  rate(): number | null {
    const first = this.#samples[0];
    const last = this.#samples[this.#samples.length - 1];
    if (!first || !last || last.t - first.t < 400) return null;
    return Math.max(0, (last.done - first.done) / ((last.t - first.t) / 1000));
  }
}

export interface BatchProgressView {
  update(b: Batch): void;
  stop(): void;
}

export function describeWaiting(b: Batch): string {
  if (b.queue_position !== null && b.queue_position !== undefined) return `${b.status}, queued (position ${b.queue_position})`;
  return b.status;
}

/** The figures of one poll: done, total, rate and ETA as text. */
export function progressLine(b: Batch, meter: RateMeter): { done: number; total: number; rate: string; eta: string } {
  const { completed, failed, total } = b.request_counts;
  const done = completed + failed;
  const r = meter.rate();
  const eta = r && r > 0 && total > done ? formatDuration((total - done) / r) : '-';
  return { done, total, rate: r === null ? '-' : r.toFixed(1), eta };
}

/**
 * Live view of a running batch. On a terminal: a bar of completed+failed over total with req/s
 * and ETA. Elsewhere: a plain line on stderr when the status changes and every `plainEveryMs`.
 */
export async function batchProgress(plainEveryMs = 10_000): Promise<BatchProgressView> {
  const meter = new RateMeter();
  if (!progressEnabled()) {
    let lastStatus = '';
    let lastAt = 0;
    return {
      update(b) {
        meter.add(p0(b));
        const p = progressLine(b, meter);
        const now = Date.now();
        if (b.status === lastStatus && now - lastAt < plainEveryMs) return;
        lastStatus = b.status;
        lastAt = now;
        const counts = p.total > 0 ? `: ${p.done}/${p.total} done (${b.request_counts.failed} failed), ${p.rate} req/s, ETA ${p.eta}` : '';
        process.stderr.write(`${b.id} ${describeWaiting(b)}${counts}\n`);
      },
      stop: () => undefined,
    };
  }
  const bar = await makeBar(`{id} {status} |{bar}| {done}/{all} ({failed} failed)  {rate} req/s  ETA {left}`);
  let started = false;
  return {
    update(b) {
      meter.add(p0(b));
      const p = progressLine(b, meter);
      const payload = { id: b.id, status: describeWaiting(b), failed: b.request_counts.failed, done: p.done, all: p.total, rate: p.rate, left: p.eta };
      if (!started) {
        started = true;
        bar.start(Math.max(p.total, 1), p.done, payload);
      }
      bar.setTotal(Math.max(p.total, 1));
      bar.update(p.done, payload);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

const p0 = (b: Batch): number => b.request_counts.completed + b.request_counts.failed;
