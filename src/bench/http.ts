import { setTimeout as sleep } from 'node:timers/promises';

import { type Dispatcher, request } from 'undici';

export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly body: string,
    what: string,
  ) {
    super(`${what}: HTTP ${status}: ${body.slice(0, 500)}`);
  }
}

type Options = Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & { method?: Dispatcher.HttpMethod };

/** A request whose 2xx JSON answer is returned; anything else throws with the body. */
export async function requestJson<T>(url: string, opts: Options = {}): Promise<T> {
  const what = `${opts.method ?? 'GET'} ${url}`;
  const res = await request(url, opts);
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode >= 300) throw new HttpError(res.statusCode, text, what);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`${what}: the answer is not JSON: ${text.slice(0, 200)}`);
  }
}

export const postJson = <T>(url: string, body: unknown): Promise<T> =>
  requestJson<T>(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** Polls `url` until it answers 200; throws on timeout or as soon as `failed()` returns an error. */
export async function waitForHealthy(url: string, timeoutMs: number, failed: () => Error | null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    const early = failed();
    if (early) throw early;
    try {
      const res = await request(url, { headersTimeout: 2000, bodyTimeout: 2000 });
      await res.body.dump();
      if (res.statusCode === 200) return;
      last = `HTTP ${res.statusCode}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${url} not healthy after ${timeoutMs} ms (${last})`);
    await sleep(100);
  }
}
