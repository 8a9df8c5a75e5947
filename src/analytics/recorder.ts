import { type AnalyticsMinute, emptyMinute, type MetaStore } from '../store/meta-store.js';
import { addInto, bucketOf, DAY, MINUTE } from './buckets.js';

export interface RecorderOptions {
  /** How often buffered counts go to the store. */
  flushMs?: number;
  /** Minutes older than this are pruned from the store (seconds). */
  retentionSeconds?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

interface RequestDone {
  project: string;
  ok: boolean;
  latencyMs: number;
  usage: { inputTokens: number; outputTokens: number } | null;
}

/**
 * Per-minute counters fed by engine events and uploads. Counts are buffered in memory and added
 * to the store's minute rows every few seconds: one write per minute touched, never per request.
 */
export class AnalyticsRecorder {
  readonly #store: MetaStore;
  /** Keyed by `${minute}:${project}`. */
  readonly #pending = new Map<string, AnalyticsMinute>();
  readonly #flushMs: number;
  readonly #retention: number;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> = Promise.resolve();
  #lastPrune = 0;

  constructor(store: MetaStore, opts: RecorderOptions = {}) {
    this.#store = store;
    this.#flushMs = opts.flushMs ?? 2000;
    this.#retention = opts.retentionSeconds ?? 8 * DAY;
    this.#now = opts.now ?? Date.now;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.flush(), this.#flushMs);
    this.#timer.unref();
  }

  /** Stops the timer and writes what is buffered. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.flush();
  }

  requestDone(e: RequestDone): void {
    const m = this.#minute(e.project);
    if (e.ok) m.requestsCompleted++;
    else m.requestsFailed++;
    m.latencyMsSum += e.latencyMs;
    if (e.usage) {
      m.inputTokens += e.usage.inputTokens;
      m.outputTokens += e.usage.outputTokens;
    }
  }

  retry(project: string): void {
    this.#minute(project).retries++;
  }

  batchCreated(project: string, createdAt: number): void {
    this.#minute(project, createdAt * 1000).batchesCreated++;
  }

  batchFinished(project: string, durationSeconds: number): void {
    const m = this.#minute(project);
    m.batchesFinished++;
    m.batchSecondsSum += Math.max(0, durationSeconds);
  }

  upload(project: string, bytes: number): void {
    const m = this.#minute(project);
    m.uploads++;
    m.uploadBytes += bytes;
  }

  /**
   * Counts not yet in the store, of one project or all (queries add them so the dashboard is
   * never a flush behind).
   */
  pending(project?: string): AnalyticsMinute[] {
    return [...this.#pending.values()].filter((m) => project === undefined || m.project === project).map((m) => ({ ...m }));
  }

  /** Writes the buffer; on failure the counts go back into it for the next flush. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      if (this.#pending.size === 0) return;
      const rows = this.pending();
      this.#pending.clear();
      try {
        await this.#store.addAnalyticsMinutes(rows);
      } catch (err) {
        for (const r of rows) addInto(this.#minuteAt(r.project, r.minute), r);
        process.emitWarning(`analytics flush failed: ${String(err)}`);
        return;
      }
      const now = Math.floor(this.#now() / 1000);
      if (now - this.#lastPrune > 3600) {
        this.#lastPrune = now;
        await this.#store.pruneAnalyticsMinutes(now - this.#retention).catch(() => 0);
      }
    });
    return this.#flushing;
  }

  #minute(project: string, atMs = this.#now()): AnalyticsMinute {
    return this.#minuteAt(project, bucketOf(Math.floor(atMs / 1000), MINUTE));
  }

  #minuteAt(project: string, minute: number): AnalyticsMinute {
    const key = `${minute}:${project}`;
    let m = this.#pending.get(key);
    if (!m) this.#pending.set(key, (m = emptyMinute(minute, project)));
    return m;
  }
}
