import { createServer,request as httpRequest, type Server } from 'node:http';

export interface RoundRobinProxy {
  url: string;
  port: number;
  /** How many requests went to each target so far. */
  counts(): number[];
  close(): Promise<void>;
}

/**
 * A plain HTTP proxy on 127.0.0.1 that sends each request to the next target in turn, streaming
 * both ways (server-sent events included): a stand-in for the load balancer in front of a
 * cluster, so every API call of a test may land on any replica.
 */
export async function startRoundRobinProxy(targets: readonly string[]): Promise<RoundRobinProxy> {
  const counts = targets.map(() => 0);
  let next = 0;
  const server: Server = createServer((req, res) => {
    const i = next++ % targets.length;
    counts[i]!++;
    const target = new URL(req.url ?? '/', targets[i]);
    const upstream = httpRequest(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    counts: () => [...counts],
    close: () =>
      new Promise<void>((res) => {
        server.closeAllConnections();
        server.close(() => res());
      }),
  };
}
