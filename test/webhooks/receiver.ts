import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import OpenAI from 'openai';
import { Webhook } from 'standardwebhooks';

/** One request the receiver got, and which secrets verified it. */
export interface Received {
  webhookId: string;
  timestamp: number;
  signature: string;
  headers: IncomingHttpHeaders;
  body: string;
  event: { id: string; object: string; type: string; created_at: number; data: { id: string } };
  /** 1 for the first request with this webhook-id, 2 for the next… */
  attempt: number;
  /** The status answered. */
  status: number;
  /** Secrets (of `verifyWith`) that verified this request with BOTH the openai SDK and standardwebhooks. */
  verifiedBy: string[];
  /** What each library said for each secret that did not verify (a test prints it). */
  failures: string[];
  path: string;
  at: number;
}

export interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** The requests of one webhook-id (one event to one endpoint), in order. */
  attemptsOf(webhookId: string): Received[];
  /** Waits until `pred` holds over what was received. */
  until(pred: (r: Received[]) => boolean, timeoutMs?: number, what?: string): Promise<void>;
  /** Stops listening and drops every connection: the port is closed until `resume`. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  close(): Promise<void>;
}

export interface ReceiverOptions {
  /** Secrets every request is checked against (read at each request). */
  verifyWith: () => readonly string[];
  /** The status to answer (default 200). */
  answer?: (r: { webhookId: string; attempt: number; path: string; event: Received['event'] }) => number;
  port?: number;
}

/**
 * A webhook receiver on 127.0.0.1 that verifies every delivery as integrators do: with the
 * official SDK (`new OpenAI({ webhookSecret }).webhooks.unwrap(body, headers)`) and with the
 * Standard Webhooks reference package (`new Webhook(secret).verify(body, headers)`).
 */
export async function startReceiver(o: ReceiverOptions): Promise<Receiver> {
  const received: Received[] = [];
  const attempts = new Map<string, number>();
  let server: Server;
  let port = o.port ?? 0;

  const handle = async (headers: IncomingHttpHeaders, body: string, path: string): Promise<number> => {
    const webhookId = String(headers['webhook-id'] ?? '');
    const attempt = (attempts.get(webhookId) ?? 0) + 1;
    attempts.set(webhookId, attempt);
    const verifiedBy: string[] = [];
    const failures: string[] = [];
    for (const secret of o.verifyWith()) {
      const sdk = await new OpenAI({ apiKey: 'unused', webhookSecret: secret }).webhooks.unwrap(body, headers as Record<string, string>).then(
        (ev) => ({ ok: true as const, ev }),
        (err: unknown) => ({ ok: false as const, err: String(err) }),
      );
      let std: string | null = null;
      try {
        new Webhook(secret).verify(body, headers as Record<string, string>);
      } catch (err) {
        std = String(err);
      }
      if (sdk.ok && std === null) verifiedBy.push(secret);
      else failures.push(`${secret.slice(0, 12)}…: sdk ${sdk.ok ? 'ok' : sdk.err}; standardwebhooks ${std ?? 'ok'}`);
    }
    let event: Received['event'];
    try {
      event = JSON.parse(body) as Received['event'];
    } catch {
      event = { id: '', object: '', type: 'not-json', created_at: 0, data: { id: '' } };
    }
    const status = o.answer?.({ webhookId, attempt, path, event }) ?? 200;
    received.push({
      webhookId,
      timestamp: Number(headers['webhook-timestamp']),
      signature: String(headers['webhook-signature'] ?? ''),
      headers,
      body,
      event,
      attempt,
      status,
      verifiedBy,
      failures,
      path,
      at: Date.now(),
    });
    return status;
  };

  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      server = createServer((req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (c: string) => (body += c));
        req.on('end', () => {
          handle(req.headers, body, req.url ?? '/').then(
            (status) => res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : 'nope'),
            () => res.writeHead(500).end(),
          );
        });
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });

  await listen();
  return {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    received,
    attemptsOf: (id) => received.filter((r) => r.webhookId === id),
    async until(pred, timeoutMs = 10_000, what = 'the deliveries') {
      const deadline = Date.now() + timeoutMs;
      while (!pred(received)) {
        if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}; received: ${JSON.stringify(received.map((r) => [r.webhookId, r.event.type, r.attempt, r.status]))}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    pause: stop,
    resume: listen,
    close: stop,
  };
}
