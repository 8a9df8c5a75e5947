import type { BlobConfig, DatabaseConfig } from '../config.js';
import type { BlobStore } from '../store/blob-store.js';
import type { MetaStore } from '../store/meta-store.js';

/**
 * The store implementations, picked from the configuration's URLs. Each is loaded only when
 * chosen: the embedded default (SQLite and a local directory) never loads the PostgreSQL driver
 * or the AWS SDK, and needs neither service.
 */
export async function openMetaStore(db: DatabaseConfig): Promise<MetaStore> {
  if (db.kind === 'sqlite') {
    const { SqliteMetaStore } = await import('../store/sqlite/sqlite-meta-store.js');
    return SqliteMetaStore.open(db.path);
  }
  const { PostgresMetaStore } = await import('../store/postgres/postgres-meta-store.js');
  return PostgresMetaStore.open(db.url);
}

export async function openBlobStore(blobs: BlobConfig): Promise<BlobStore> {
  if (blobs.kind === 'local') {
    const { LocalBlobStore } = await import('../store/local-blob-store.js');
    return new LocalBlobStore(blobs.dir);
  }
  const { S3BlobStore } = await import('../store/s3-blob-store.js');
  return new S3BlobStore(blobs.bucket, blobs.prefix, {
    region: blobs.region,
    ...(blobs.endpoint === null ? {} : { endpoint: blobs.endpoint }),
    ...(blobs.accessKeyId === null || blobs.secretAccessKey === null ? {} : { accessKeyId: blobs.accessKeyId, secretAccessKey: blobs.secretAccessKey }),
  });
}

/** Where a store lives, for logs and /health (never a password). */
export function describeStores(db: DatabaseConfig, blobs: BlobConfig): { database: string; blobs: string } {
  let database = `sqlite:${db.kind === 'sqlite' ? db.path : ''}`;
  if (db.kind === 'postgres') {
    try {
      const u = new URL(db.url);
      u.password = '';
      database = u.toString();
    } catch {
      database = 'postgres';
    }
  }
  return { database, blobs: blobs.kind === 'local' ? `file:${blobs.dir}` : `s3://${blobs.bucket}/${blobs.prefix}` };
}
