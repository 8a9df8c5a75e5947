import type { UpstreamOutcome } from './outcome.js';
import type { UpstreamRequest } from './upstream-client.js';
import type { UpstreamStatus } from './upstream-pool.js';

/** What the engine needs of its inference servers; `UpstreamPool` implements it for one or many. */
export interface Upstream {
  /**
   * One attempt; never throws. Called again by the engine's retry loop for a retry. Set
   * `req.model` (spares parsing the body to route it) and `req.prefixKey` (`prefixKeyOf` in
   * prefix-key.ts: requests sharing a prompt prefix meet on one server's prefix cache) when known.
   */
  send(req: UpstreamRequest, signal: AbortSignal): Promise<UpstreamOutcome>;
  /** Models served by at least one upstream; null when no upstream answered GET /v1/models. */
  models(): ReadonlySet<string> | null;
  /** Whether some upstream serves `model` (true while models are unknown). */
  servesModel(model: string): boolean;
  close(): Promise<void>;
}

/** What the API shows of the upstreams (GET /health, /metrics). */
export interface UpstreamStatusSource {
  status(): UpstreamStatus[];
}
