import { Pool } from 'undici';

/**
 * A plain client with no batch logic: `concurrency` loops, each sending the next body in order
 * (POST /v1/chat/completions) as soon as its previous one is answered. The reference for what
 * BESH's dispatch costs: the same bodies, the same order, the same concurrency.
 */
export async function runBareClient(mockUrl: string, bodies: readonly string[], concurrency: number): Promise<{ elapsedMs: number; failures: number }> {
  const pool = new Pool(mockUrl, { connections: concurrency, pipelining: 1, headersTimeout: 600_000, bodyTimeout: 600_000 });
  let next = 0;
  let failures = 0;
  const loop = async (): Promise<void> => {
    for (let i = next++; i < bodies.length; i = next++) {
      const res = await pool.request({ path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json' }, body: bodies[i]! });
      await res.body.dump({ limit: Infinity });
      if (res.statusCode !== 200) failures++;
    }
  };
  const t0 = performance.now();
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, bodies.length) }, loop));
    return { elapsedMs: performance.now() - t0, failures };
  } finally {
    await pool.close();
  }
}

/**
 * Interactive users: `clients` closed loops, each sending one short chat request at a time,
 * pausing `thinkMs` between its answer and the next request, until `stop` is aborted. Every
 * request's latency (send to last byte) is kept, so percentiles come from all of them.
 */
export async function runInteractive(mockUrl: string, o: { clients: number; body: (i: number) => string; thinkMs: number; stop: AbortSignal }): Promise<{ latencies: number[]; failures: number }> {
  const pool = new Pool(mockUrl, { connections: o.clients, pipelining: 1, headersTimeout: 600_000, bodyTimeout: 600_000 });
  const latencies: number[] = [];
  let failures = 0;
  let n = 0;
  const loop = async (): Promise<void> => {
    while (!o.stop.aborted) {
      const t0 = performance.now();
      try {
        const res = await pool.request({ path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json' }, body: o.body(n++) });
        await res.body.dump({ limit: Infinity });
        if (res.statusCode === 200) latencies.push(performance.now() - t0);
        else failures++;
      } catch {
        failures++;
      }
      if (o.thinkMs > 0 && !o.stop.aborted) await new Promise((r) => setTimeout(r, o.thinkMs));
    }
  };
  try {
    await Promise.all(Array.from({ length: o.clients }, loop));
    return { latencies, failures };
  } finally {
    await pool.close();
  }
}

/** The p-th percentile (0..100) by nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
