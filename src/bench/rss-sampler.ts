import { readFile } from 'node:fs/promises';

export interface RssSummary {
  /** Highest VmRSS seen by sampling, in bytes. */
  sampledPeakBytes: number;
  /** VmHWM (the kernel's own resident high-water mark) when sampling stopped, in bytes. */
  hwmBytes: number;
  /** The larger of the two: what is reported as peak RSS. */
  peakBytes: number;
  samples: number;
}

interface Status {
  rssBytes: number;
  hwmBytes: number;
}

/** Reads VmRSS and VmHWM of a Linux process; null once the process is gone. */
async function readStatus(pid: number): Promise<Status | null> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kib = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m?.[1] === undefined ? 0 : Number(m[1]) * 1024;
  };
  return { rssBytes: kib('VmRSS'), hwmBytes: kib('VmHWM') };
}

/** Samples a process's resident memory every `intervalMs` until stopped. */
export class RssSampler {
  #timer: NodeJS.Timeout | undefined;
  #reading: Promise<void> | null = null;
  #peak = 0;
  #last = 0;
  #samples = 0;
  #stopped: Promise<RssSummary> | undefined;

  constructor(
    readonly pid: number,
    readonly intervalMs = 100,
  ) {}

  start(): this {
    this.#timer = setInterval(() => this.#tick(), this.intervalMs);
    this.#tick();
    return this;
  }

  #tick(): void {
    // On a busy machine a read may outlast the interval: skip a tick rather than pile reads up.
    if (this.#reading) return;
    this.#reading = this.#sample().then(
      () => void (this.#reading = null),
      () => void (this.#reading = null),
    );
  }

  async #sample(): Promise<Status | null> {
    const s = await readStatus(this.pid);
    if (!s) return null;
    this.#samples++;
    this.#last = s.rssBytes;
    if (s.rssBytes > this.#peak) this.#peak = s.rssBytes;
    return s;
  }

  /** The latest sample and the highest so far, in bytes (progress output). */
  get current(): { rssBytes: number; peakBytes: number } {
    return { rssBytes: this.#last, peakBytes: this.#peak };
  }

  /** Call before stopping the process: VmHWM is read now. Later calls return the same summary. */
  stop(): Promise<RssSummary> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<RssSummary> {
    clearInterval(this.#timer);
    await this.#reading;
    const hwmBytes = (await this.#sample())?.hwmBytes ?? 0;
    return { sampledPeakBytes: this.#peak, hwmBytes, peakBytes: Math.max(this.#peak, hwmBytes), samples: this.#samples };
  }
}
