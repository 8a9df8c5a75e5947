import type { SingleBar } from 'cli-progress';

import { formatBytes } from './format.js';

/**
 * Progress bars go to stderr, and only when stderr is a terminal: scripts and tests get a clean
 * stdout and no escape codes. `BESH_PROGRESS=0` turns them off on a terminal too.
 */
export function progressEnabled(): boolean {
  return process.stderr.isTTY === true && process.env.BESH_PROGRESS !== '0';
}

/** cli-progress is loaded only when a bar is shown, so scripted runs start faster. */
export async function makeBar(format: string): Promise<SingleBar> {
  const { Presets, SingleBar } = await import('cli-progress');
  return new SingleBar({ format, stream: process.stderr, hideCursor: true, fps: 8, etaBuffer: 50, barsize: 24, autopadding: true }, Presets.shades_classic);
}

export interface ByteProgress {
  add(n: number): void;
  stop(): void;
}

/** A byte counter for uploads and downloads: a bar on a terminal, silent otherwise. */
export async function byteProgress(label: string, total: number | null): Promise<ByteProgress> {
  if (!progressEnabled()) return { add: () => undefined, stop: () => undefined };
  const known = total !== null && total > 0;
  const bar = await makeBar(known ? `${label} |{bar}| {percentage}% {done} / {size}  ETA {eta_formatted}` : `${label} {done}`);
  let bytes = 0;
  const payload = (): Record<string, string> => ({ done: formatBytes(bytes), size: known ? formatBytes(total) : '?' });
  bar.start(known ? total : 1, 0, payload());
  return {
    add(n: number) {
      bytes += n;
      bar.update(known ? bytes : 0, payload());
    },
    stop() {
      bar.stop();
    },
  };
}
