import { performance } from 'node:perf_hooks';

/** Time and one timer for the step engine; tests pass a virtual clock to run it without waiting. */
export interface EngineClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const realClock: EngineClock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
