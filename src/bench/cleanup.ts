/**
 * Everything the benchmark starts or creates (child processes, temp dirs) is tracked here, so that
 * an error, Ctrl-C or SIGTERM still stops the children and removes the files.
 */
export interface Resource {
  readonly label: string;
  release(): Promise<void>;
  /** Last resort from the `exit` event, where nothing asynchronous runs any more. */
  releaseSync(): void;
}

const live: Resource[] = [];
let signalled = false;

/** True once SIGINT/SIGTERM arrived: failures after that are the teardown's, not BESH's. */
export const wasInterrupted = (): boolean => signalled;

/** Tracks `r` until it is released; returns the function that releases it. */
export function track(r: Resource): () => Promise<void> {
  live.push(r);
  return () => release(r);
}

const releasing = new Map<Resource, Promise<void>>();

/**
 * Once per resource, however many callers ask (the scenario's `finally` and a signal handler may
 * race). It stays in `live` until done, so an exit meanwhile still finishes it synchronously.
 */
function release(r: Resource): Promise<void> {
  let p = releasing.get(r);
  if (!p) {
    p = r.release().finally(() => {
      const i = live.indexOf(r);
      if (i !== -1) live.splice(i, 1);
    });
    releasing.set(r, p);
  }
  return p;
}

/** Releases in reverse order of creation: processes stop before their data dirs are removed. */
export async function releaseAll(): Promise<void> {
  for (const r of [...live].reverse()) {
    try {
      await release(r);
    } catch (err) {
      process.stderr.write(`bench: could not release ${r.label}: ${(err as Error).message}\n`);
    }
  }
}

export function installExitHandlers(): void {
  const onSignal = (signal: NodeJS.Signals): void => {
    const code = signal === 'SIGINT' ? 130 : 143;
    if (signalled) {
      process.exit(code); // the `exit` handler still kills what is left
    }
    signalled = true;
    process.stderr.write(`\nbench: ${signal}: stopping child processes and removing temp files…\n`);
    void releaseAll().finally(() => process.exit(code));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => {
    for (const r of live.splice(0).reverse()) {
      try {
        r.releaseSync();
      } catch {
        // Exiting anyway; nothing more can be done.
      }
    }
  });
}
