/** What `GET /mock/stats` answers. */
export interface MockStats {
  total_requests: number;
  responses_by_status: Record<string, number>;
  faults: { 500: number; 429: number; drop: number };
  in_flight: number;
  max_in_flight: number;
  queued: number;
  max_queued: number;
  /** Times each request key (x-besh-custom-id, else sha1 of the body) was received. */
  received: Record<string, number>;
}

/** Requests being served and waiting: the capacity gate's, or the engine's sequences. */
export interface Levels {
  readonly inFlight: number;
  readonly queued: number;
  readonly maxInFlight: number;
  readonly maxQueued: number;
  resetPeaks(): void;
}

/** Counters of the mock; the live levels (in flight, queued) come from the gate or engine. */
export class MockStatsRecorder {
  totalRequests = 0;
  faults500 = 0;
  faults429 = 0;
  drops = 0;
  /** Tokens of the answered inference requests (vLLM's prompt_tokens / generation_tokens counters). */
  promptTokens = 0;
  generationTokens = 0;
  private byStatus = new Map<number, number>();
  private received = new Map<string, number>();

  countStatus(status: number): void {
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
  }

  countReceived(key: string): void {
    this.received.set(key, (this.received.get(key) ?? 0) + 1);
  }

  countTokens(prompt: number, generated: number): void {
    this.promptTokens += prompt;
    this.generationTokens += generated;
  }

  snapshot(levels: Levels): MockStats {
    return {
      total_requests: this.totalRequests,
      responses_by_status: Object.fromEntries([...this.byStatus].map(([s, n]) => [String(s), n])),
      faults: { 500: this.faults500, 429: this.faults429, drop: this.drops },
      in_flight: levels.inFlight,
      max_in_flight: levels.maxInFlight,
      queued: levels.queued,
      max_queued: levels.maxQueued,
      received: Object.fromEntries(this.received),
    };
  }

  reset(): void {
    this.totalRequests = 0;
    this.faults500 = 0;
    this.faults429 = 0;
    this.drops = 0;
    this.promptTokens = 0;
    this.generationTokens = 0;
    this.byStatus = new Map();
    this.received = new Map();
  }
}
