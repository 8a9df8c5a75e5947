import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import pg from 'pg';

import { track } from './cleanup.js';

/** The PostgreSQL server the cluster benchmark creates its databases on (trust auth, as on these machines). */
const PG_ADMIN_URL = process.env.BESH_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface ClusterBackend {
  /** The environment every replica gets: database, bucket, AWS variables. */
  env: Record<string, string>;
  /** A query on the cluster's database (leases, segments). */
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
  stop(): Promise<void>;
}

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

// s3rver (a real S3 protocol server, a devDependency) in a child process; --openssl-legacy-provider:
// it encrypts list continuation tokens with DES.
const S3RVER = `
const S3rver = require(process.env.S3RVER_MODULE);
new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: process.env.S3RVER_DIR, configureBuckets: [{ name: 'bench' }] })
  .run().then(({ port }) => console.log(JSON.stringify({ port })), (err) => { console.error(err); process.exit(1); });
process.stdin.on('end', () => process.exit(0)).resume();
`;

/** A fresh PostgreSQL database and an S3 protocol server for one benchmark cluster; removed by stop(). */
export async function startClusterBackend(): Promise<ClusterBackend> {
  const name = `besh_bench_${randomBytes(5).toString('hex')}`;
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  const dir = await mkdtemp(join(tmpdir(), 'besh-bench-s3-'));
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', S3RVER], {
    env: { PATH: process.env.PATH ?? '', S3RVER_MODULE: createRequire(import.meta.url).resolve('s3rver'), S3RVER_DIR: dir },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const port = await new Promise<number>((res, rej) => {
    child.once('exit', (code) => rej(new Error(`s3rver exited with ${code}`)));
    createInterface({ input: child.stdout }).once('line', (line) => res((JSON.parse(line) as { port: number }).port));
  });
  const client = new pg.Client({ connectionString: url.href });
  await client.connect();
  const stop = track({
    label: `cluster backend ${name}`,
    release: async () => {
      await client.end().catch(() => undefined);
      child.stdin.end();
      await exited;
      await rm(dir, { recursive: true, force: true });
      await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
    releaseSync: () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  });
  return {
    env: {
      BESH_DATABASE_URL: url.href,
      BESH_BLOB_URL: 's3://bench/cluster',
      AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    },
    query: async <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => (await client.query<R>(text, values)).rows,
    stop,
  };
}
