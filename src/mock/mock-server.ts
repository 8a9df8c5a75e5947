import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { CapacityGate } from './capacity-gate.js';
import { FaultInjector } from './faults.js';
import { createMockHandler, type MockState } from './mock-handler.js';
import { type MockOptions, resolveMockOptions } from './mock-options.js';
import { type MockStats, MockStatsRecorder } from './mock-stats.js';
import { ModelRegistry } from './model-registry.js';
import { StepEngine } from './step-engine.js';

export interface MockServer {
  /** e.g. `http://127.0.0.1:PORT` (no trailing slash, no `/v1`). */
  url: string;
  port: number;
  stats(): MockStats;
  /** Zeroes the stats, the faults-per-request bookkeeping and the engine's peaks and counters. */
  reset(): void;
  /** Stops listening and destroys every socket, hung ones included. */
  close(): Promise<void>;
}

/** Starts the simulated vLLM-like server; `port: 0` picks a free port. */
export async function startMockServer(partial: Partial<MockOptions> = {}): Promise<MockServer> {
  const opts = resolveMockOptions(partial);
  const stats = new MockStatsRecorder();
  const gate = new CapacityGate(opts.capacity);
  const engine = opts.maxNumSeqs > 0 ? new StepEngine(opts) : null;
  const levels = engine ?? gate;
  const faults = new FaultInjector(opts);
  const state: MockState = {
    opts,
    stats,
    gate,
    engine,
    faults,
    models: new ModelRegistry(opts.models),
    reset() {
      stats.reset();
      levels.resetPeaks();
      faults.reset();
    },
  };

  const server = createServer({ noDelay: true }, createMockHandler(state));
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      resolve();
    });
  });

  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost(opts.host)}:${port}`,
    port,
    stats: () => stats.snapshot(levels),
    reset: () => state.reset(),
    close() {
      closing ??= new Promise<void>((resolve) => {
        engine?.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** A host a client can connect to: wildcard addresses become loopback, IPv6 gets brackets. */
function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
