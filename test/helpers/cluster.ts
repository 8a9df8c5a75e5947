import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import OpenAI from 'openai';

import type { BeshProcess } from './besh-process.js';
import { startBesh } from './besh-process.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';
import { type RoundRobinProxy, startRoundRobinProxy } from './round-robin-proxy.js';
import { type S3TestServer, startS3Server } from './s3-server.js';

/** Short leases and fast heartbeats, so takeovers happen within a test's patience. */
export const CLUSTER_TIMING: Record<string, string> = {
  BESH_LEASE_TTL_MS: '1500',
  BESH_PROGRESS_FLUSH_MS: '200',
  BESH_CLAIM_INTERVAL_MS: '100',
  BESH_SEGMENT_FLUSH_MS: '200',
};

/** What a cluster shares: a fresh PostgreSQL database and an S3 bucket prefix of its own. */
export interface ClusterBackend {
  db: TestDatabase;
  s3: S3TestServer;
  /** The environment every replica gets (database, blob URL, AWS variables). */
  env: Record<string, string>;
  /** Keys under `prefix` in this cluster's part of the bucket, sorted. */
  listBlobs(prefix: string): Promise<string[]>;
  /** The object stored at `key` as it is in the bucket (a composed file: its manifest). */
  readObject(key: string): Promise<Buffer>;
  stop(): Promise<void>;
}

export async function startClusterBackend(): Promise<ClusterBackend> {
  const [db, s3] = await Promise.all([createTestDatabase(), startS3Server()]);
  const prefix = `c-${randomBytes(4).toString('hex')}`;
  const client = new S3Client({
    region: 'us-east-1',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  return {
    db,
    s3,
    env: {
      BESH_DATABASE_URL: db.url,
      BESH_BLOB_URL: `s3://${s3.bucket}/${prefix}`,
      AWS_ENDPOINT_URL: s3.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    },
    async listBlobs(under: string) {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${prefix}/${under}`, ContinuationToken: token }));
        for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key.slice(prefix.length + 1));
        token = page.NextContinuationToken;
      } while (token);
      return keys.sort();
    },
    async readObject(key: string) {
      const res = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/${key}` }));
      return Buffer.from(await res.Body!.transformToByteArray());
    },
    async stop() {
      client.destroy();
      await s3.stop();
      await db.drop();
    },
  };
}

export interface Cluster {
  backend: ClusterBackend;
  replicas: BeshProcess[];
  /** Round-robin in front of every replica started so far (the load balancer). */
  proxy: RoundRobinProxy;
  /** An SDK client through the proxy: each call may land on any replica. */
  client: OpenAI;
  /** Starts one more replica (its own data directory, the shared backend). */
  addReplica(env?: Record<string, string>): Promise<BeshProcess>;
  stop(): Promise<void>;
}

/** `n` replicas of `besh serve` on one PostgreSQL database and one S3 prefix, each started with only the environment. */
export async function startCluster(n: number, env: Record<string, string>, opts: { dataDir: string; backend?: ClusterBackend }): Promise<Cluster> {
  const backend = opts.backend ?? (await startClusterBackend());
  const replicas: BeshProcess[] = [];
  const addReplica = async (extra: Record<string, string> = {}): Promise<BeshProcess> => {
    const i = replicas.length + 1;
    mkdirSync(join(opts.dataDir, `replica-${i}`), { recursive: true });
    const r = await startBesh({ ...CLUSTER_TIMING, ...env, ...backend.env, BESH_REPLICA_ID: `r${i}`, ...extra }, { dataDir: join(opts.dataDir, `replica-${i}`), local: true });
    replicas.push(r);
    return r;
  };
  // Started one after the other: their migrations would be safe at once, but the logs read better.
  for (let i = 0; i < n; i++) await addReplica();
  let proxy = await startRoundRobinProxy(replicas.map((r) => r.url));
  const cluster: Cluster = {
    backend,
    replicas,
    proxy,
    client: new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: 'test-key', maxRetries: 0, timeout: 30_000 }),
    addReplica: async (extra) => {
      const r = await addReplica(extra);
      await proxy.close();
      proxy = await startRoundRobinProxy(replicas.map((x) => x.url));
      cluster.proxy = proxy;
      cluster.client = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: 'test-key', maxRetries: 0, timeout: 30_000 });
      return r;
    },
    /** Kills the replicas and the proxy; the backend too, unless it was given. */
    async stop() {
      await cluster.proxy.close();
      await Promise.all(replicas.map((r) => r.kill()));
      if (!opts.backend) await backend.stop();
    },
  };
  return cluster;
}
