/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** setTimeout that accepts delays past 2^31-1 ms by re-arming. */
export function setLongTimeout(fn: () => void, ms: number): { clear(): void } {
  const MAX = 2_147_000_000;
  let timer: NodeJS.Timeout;
  const arm = (left: number): void => {
    timer = setTimeout(() => (left > MAX ? arm(left - MAX) : fn()), Math.max(0, Math.min(left, MAX)));
    timer.unref();
  };
  arm(ms);
  return { clear: () => clearTimeout(timer) };
}
