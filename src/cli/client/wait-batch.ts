import { setTimeout as sleep } from 'node:timers/promises';

import { batchProgress } from './batch-progress.js';
import { ApiError, CliError } from './errors.js';
import type { BeshClient } from './http-client.js';
import type { Batch } from './types.js';
import { TERMINAL_STATUSES } from './types.js';

/** Consecutive failed polls tolerated (e.g. while BESH restarts) before giving up. */
const MAX_POLL_FAILURES = 20;

/**
 * Polls a batch every `intervalMs` until it reaches a terminal status, showing live progress on
 * stderr. Ctrl-C stops waiting (the batch keeps running) and says how to look at it later.
 */
export async function waitForBatch(client: BeshClient, id: string, intervalMs = 500): Promise<Batch> {
  const view = await batchProgress();
  const onSigint = (): void => {
    view.stop();
    process.stderr.write(`\nStopped waiting; ${id} keeps running. Check it with: besh status ${id}\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSigint);
  let failures = 0;
  try {
    for (;;) {
      let b: Batch;
      try {
        b = await client.getBatch(id);
        failures = 0;
      } catch (err) {
        // A 404 or 401 will not get better; a restart or a network blip may.
        if (err instanceof ApiError && err.status < 500) throw err;
        if (!(err instanceof CliError) || ++failures > MAX_POLL_FAILURES) throw err;
        await sleep(intervalMs * 2);
        continue;
      }
      view.update(b);
      if (TERMINAL_STATUSES.includes(b.status)) return b;
      await sleep(intervalMs);
    }
  } finally {
    view.stop();
    process.removeListener('SIGINT', onSigint);
  }
}
