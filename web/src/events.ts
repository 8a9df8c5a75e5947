import { apiFetch, AuthError } from './api.js';
import { type SseMessage, SseParser } from './sse.js';

export interface EventStreamHandlers {
  /** The stream is open (again). */
  onOpen(): void;
  /** The stream dropped; the next try is in `retryMs`. */
  onDown(retryMs: number): void;
  onMessage(msg: SseMessage): void;
}

/** Nothing at all for this long (the server sends `engine` every second) means a dead connection. */
const SILENCE_MS = 45_000;
const MAX_BACKOFF_MS = 30_000;

/**
 * Reads server-sent events with fetch() — EventSource cannot send the Authorization header — and
 * reconnects with exponential backoff (from the server's `retry:`, 1 s if none; at most 30 s; with
 * jitter). A 401 stops it for good: apiFetch has already told the page, which asks for a key.
 * Returns the function that closes the stream.
 */
export function streamEvents(path: string, handlers: EventStreamHandlers): () => void {
  const stop = new AbortController();
  let baseMs = 1000;
  let failures = 0;

  const attempt = async (): Promise<void> => {
    const conn = new AbortController();
    const abortConn = (): void => conn.abort();
    stop.signal.addEventListener('abort', abortConn);
    let watchdog = 0;
    const feed = (): void => {
      clearTimeout(watchdog);
      watchdog = window.setTimeout(abortConn, SILENCE_MS);
    };
    const parser = new SseParser();
    try {
      const r = await apiFetch(path, { headers: { accept: 'text/event-stream' }, cache: 'no-store', signal: conn.signal });
      if (!r.ok || !r.body) throw new Error(`events: HTTP ${r.status}`);
      failures = 0;
      handlers.onOpen();
      feed();
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        feed();
        if (parser.retryMs !== null) baseMs = parser.retryMs;
        for (const msg of parser.push(value)) {
          if (stop.signal.aborted) return;
          handlers.onMessage(msg);
        }
      }
    } finally {
      clearTimeout(watchdog);
      stop.signal.removeEventListener('abort', abortConn);
      if (parser.retryMs !== null) baseMs = parser.retryMs;
    }
  };

  void (async () => {
    while (!stop.signal.aborted) {
      try {
        await attempt();
      } catch (err) {
        if (err instanceof AuthError) return;
      }
      if (stop.signal.aborted) return;
      // Counted from the last time the stream opened: a stream that ran and ended retries after `retry:`.
      failures++;
      const delay = Math.round(Math.min(MAX_BACKOFF_MS, baseMs * 2 ** (failures - 1)) * (0.8 + Math.random() * 0.4));
      handlers.onDown(delay);
      await new Promise<void>((resolve) => {
        const t = window.setTimeout(resolve, delay);
        stop.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  })();

  return () => stop.abort();
}
