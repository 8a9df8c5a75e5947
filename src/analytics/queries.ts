import { BATCH_STATUSES, type BatchStatus } from '../domain/index.js';
import type { AnalyticsMinute, MetaStore } from '../store/meta-store.js';
import { bucketOf, DAY, MINUTE, QUARTER, rollUp, total } from './buckets.js';
import type { AnalyticsRecorder } from './recorder.js';

const ratio = (a: number, b: number): number => (b > 0 ? a / b : 0);
const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;

export interface Window {
  /** Inclusive start and exclusive end, unix seconds (bucket aligned). */
  start: number;
  end: number;
}

/** The dashboard's read side: stored minutes plus what the recorder has not flushed yet. */
export class AnalyticsQueries {
  readonly #store: MetaStore;
  readonly #recorder: AnalyticsRecorder;
  readonly #now: () => number;

  constructor(store: MetaStore, recorder: AnalyticsRecorder, now: () => number = Date.now) {
    this.#store = store;
    this.#recorder = recorder;
    this.#now = now;
  }

  /** The last `seconds`, ending with the bucket that holds now. */
  window(seconds: number, step: number): Window {
    const end = bucketOf(Math.floor(this.#now() / 1000), step) + step;
    return { start: end - seconds, end };
  }

  /** Minutes of one project (undefined: all projects) in the window. */
  async minutes(w: Window, project?: string): Promise<AnalyticsMinute[]> {
    const stored = await this.#store.listAnalyticsMinutes(w.start, w.end, project);
    const pending = this.#recorder.pending(project).filter((m) => m.minute >= w.start && m.minute < w.end);
    return [...stored, ...pending];
  }

  /** Batches created, requests finished and uploads per 15 min (the original's timeline, extended). */
  async timeline(hours: number, project?: string) {
    const w = this.window(hours * 3600, QUARTER);
    const data = rollUp(await this.minutes(w, project), w.start, w.end, QUARTER).map((b) => ({
      timestamp: b.minute,
      batches_created: b.batchesCreated,
      requests_completed: b.requestsCompleted,
      requests_failed: b.requestsFailed,
      uploads: b.uploads,
      upload_bytes: b.uploadBytes,
    }));
    return { object: 'analytics.timeline', interval_seconds: QUARTER, start: w.start, end: w.end, data };
  }

  /** Tokens in/out and durations per 15 min. */
  async tokens(hours: number, project?: string) {
    const w = this.window(hours * 3600, QUARTER);
    const data = rollUp(await this.minutes(w, project), w.start, w.end, QUARTER).map((b) => {
      const requests = b.requestsCompleted + b.requestsFailed;
      return {
        timestamp: b.minute,
        input_tokens: b.inputTokens,
        output_tokens: b.outputTokens,
        total_tokens: b.inputTokens + b.outputTokens,
        requests,
        avg_latency_ms: round(ratio(b.latencyMsSum, requests), 1),
        batches_finished: b.batchesFinished,
        avg_batch_duration_seconds: round(ratio(b.batchSecondsSum, b.batchesFinished), 1),
      };
    });
    return { object: 'analytics.tokens', interval_seconds: QUARTER, start: w.start, end: w.end, data };
  }

  /** Requests and tokens per minute, with per-second rates, for the live charts. */
  async perMinute(minutes: number, project?: string) {
    const w = this.window(minutes * MINUTE, MINUTE);
    const data = rollUp(await this.minutes(w, project), w.start, w.end, MINUTE).map((b) => ({
      timestamp: b.minute,
      requests_completed: b.requestsCompleted,
      requests_failed: b.requestsFailed,
      retries: b.retries,
      input_tokens: b.inputTokens,
      output_tokens: b.outputTokens,
      requests_per_second: round((b.requestsCompleted + b.requestsFailed) / MINUTE),
      tokens_per_second: round((b.inputTokens + b.outputTokens) / MINUTE),
    }));
    return { interval_seconds: MINUTE, start: w.start, end: w.end, data };
  }

  /** Figures of the last 24 h for the summary cards. */
  async summary(project?: string) {
    const w = this.window(DAY, MINUTE);
    const t = total(await this.minutes(w, project));
    const byStatus = await this.#store.countBatchesCreatedSince(w.start, project);
    const batches_by_status = Object.fromEntries(BATCH_STATUSES.map((s) => [s, byStatus[s] ?? 0])) as Record<BatchStatus, number>;
    const requests = t.requestsCompleted + t.requestsFailed;
    return {
      window_seconds: DAY,
      batches_by_status,
      batches_created: t.batchesCreated,
      batches_finished: t.batchesFinished,
      requests_completed: t.requestsCompleted,
      requests_failed: t.requestsFailed,
      retries: t.retries,
      error_rate: round(ratio(t.requestsFailed, requests), 4),
      input_tokens: t.inputTokens,
      output_tokens: t.outputTokens,
      uploads: t.uploads,
      upload_bytes: t.uploadBytes,
      avg_batch_duration_seconds: round(ratio(t.batchSecondsSum, t.batchesFinished), 1),
      avg_latency_ms: round(ratio(t.latencyMsSum, requests), 1),
    };
  }
}
