import type pg from 'pg';

import type { FileRecord } from '../../domain/index.js';
import { fileToParams } from '../sql/rows.js';
import {
  type AddPartResult,
  type CompleteResult,
  partToParams,
  rowToPart,
  rowToUpload,
  UPLOAD_SELECT,
  type UploadParams,
  type UploadPartRecord,
  type UploadPartRow,
  type UploadRecord,
  type UploadRow,
  type UploadStore,
  uploadToParams,
} from '../upload-store.js';
import { Db, LOCK, NOW_MS, sql, transaction } from './pg-db.js';
import { FILES, PROJECTS } from './statements.js';

/** A claim is live while `claim_expires_at` is after the database's clock. */
const NO_LIVE_CLAIM = `(claim_expires_at IS NULL OR claim_expires_at <= ${NOW_MS})`;
const HOLDS_CLAIM = `status = 'pending' AND claim_token = @token AND claim_expires_at > ${NOW_MS}`;

const UPLOADS = {
  insert: sql<UploadParams>(
    `INSERT INTO uploads (id, project, filename, purpose, bytes, mime_type, created_at, expires_at, file_expires_after)
     VALUES (@id, @project, @filename, @purpose, @bytes, @mime_type, @created_at, @expires_at, @file_expires_after)`,
  ),
  get: sql<{ id: string }, UploadRow>(`SELECT ${UPLOAD_SELECT} FROM uploads WHERE id = @id`),
  /** Row-locks the upload: parts, completion, cancel and expiry of one upload are serialised on it. */
  lock: sql<{ id: string }, UploadRow>(`SELECT ${UPLOAD_SELECT} FROM uploads WHERE id = @id FOR UPDATE`),
  partBytes: sql<{ id: string }, { n: number }>('SELECT COALESCE(SUM(bytes), 0)::bigint AS n FROM upload_parts WHERE upload_id = @id'),
  insertPart: sql<UploadPartRow>(
    'INSERT INTO upload_parts (id, upload_id, blob_key, bytes, created_at) VALUES (@id, @upload_id, @blob_key, @bytes, @created_at)',
  ),
  listParts: sql<{ id: string }, UploadPartRow>('SELECT id, upload_id, blob_key, bytes, created_at FROM upload_parts WHERE upload_id = @id ORDER BY seq'),
  claim: sql<{ id: string; token: string; now: number; ttl_ms: number }>(
    `UPDATE uploads SET claim_token = @token, claim_expires_at = ${NOW_MS} + @ttl_ms::bigint
     WHERE id = @id AND status = 'pending' AND expires_at > @now AND ${NO_LIVE_CLAIM}`,
  ),
  renewClaim: sql<{ id: string; token: string; ttl_ms: number }>(
    `UPDATE uploads SET claim_expires_at = ${NOW_MS} + @ttl_ms::bigint WHERE id = @id AND ${HOLDS_CLAIM}`,
  ),
  releaseClaim: sql<{ id: string; token: string }>('UPDATE uploads SET claim_token = NULL, claim_expires_at = NULL WHERE id = @id AND claim_token = @token'),
  markCompleted: sql<{ id: string; token: string; file_id: string }>(
    `UPDATE uploads SET status = 'completed', file_id = @file_id, claim_token = NULL, claim_expires_at = NULL WHERE id = @id AND ${HOLDS_CLAIM}`,
  ),
  holdsClaim: sql<{ id: string; token: string }>(`SELECT 1 FROM uploads WHERE id = @id AND ${HOLDS_CLAIM}`),
  cancel: sql<{ id: string }, UploadRow>(
    `UPDATE uploads SET status = 'cancelled', claim_token = NULL, claim_expires_at = NULL WHERE id = @id AND status = 'pending' RETURNING ${UPLOAD_SELECT}`,
  ),
  listExpired: sql<{ now: number; limit: number }, UploadRow>(
    `SELECT ${UPLOAD_SELECT} FROM uploads WHERE status = 'pending' AND expires_at <= @now AND ${NO_LIVE_CLAIM} ORDER BY expires_at, seq LIMIT @limit`,
  ),
  expire: sql<{ id: string; now: number }>(
    `UPDATE uploads SET status = 'expired', claim_token = NULL, claim_expires_at = NULL
     WHERE id = @id AND status = 'pending' AND expires_at <= @now AND ${NO_LIVE_CLAIM}`,
  ),
  listUnswept: sql<{ limit: number }, { upload_id: string }>(
    `SELECT DISTINCT p.upload_id FROM upload_parts p JOIN uploads u ON u.id = p.upload_id WHERE u.status <> 'pending' LIMIT @limit`,
  ),
  deleteParts: sql<{ id: string }>(
    `DELETE FROM upload_parts p WHERE p.upload_id = @id AND EXISTS (SELECT 1 FROM uploads u WHERE u.id = p.upload_id AND u.status <> 'pending')`,
  ),
};

/**
 * UploadStore on PostgreSQL (see upload-store.ts), shared by every replica: a part's size check
 * and insert run under the upload's row lock; completing takes the project's advisory lock (the
 * stored-bytes check, as `insertFile` does) and then the row. Claim times are the database's clock.
 */
export class PostgresUploadStore implements UploadStore {
  readonly #pool: pg.Pool;
  readonly #db: Db;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
    this.#db = new Db(pool);
  }

  async insert(upload: UploadRecord): Promise<void> {
    if (upload.status !== 'pending' || upload.fileId !== null) throw new Error('A new upload is pending, without a file');
    await this.#db.run(UPLOADS.insert, uploadToParams(upload));
  }

  async get(id: string): Promise<UploadRecord | null> {
    const row = await this.#db.get(UPLOADS.get, { id });
    return row === undefined ? null : rowToUpload(row);
  }

  addPart(part: UploadPartRecord, now: number): Promise<AddPartResult> {
    return transaction(this.#pool, async (db) => {
      const u = await db.get(UPLOADS.lock, { id: part.uploadId });
      if (u === undefined || u.status !== 'pending' || u.expires_at <= now) return 'not_pending';
      const stored = (await db.get(UPLOADS.partBytes, { id: part.uploadId }))?.n ?? 0;
      if (stored + part.bytes > u.bytes) return 'too_many_bytes';
      await db.run(UPLOADS.insertPart, partToParams(part));
      return 'added';
    });
  }

  async listParts(uploadId: string): Promise<UploadPartRecord[]> {
    return (await this.#db.all(UPLOADS.listParts, { id: uploadId })).map(rowToPart);
  }

  async claim(id: string, token: string, now: number, ttlMs: number): Promise<boolean> {
    return (await this.#db.run(UPLOADS.claim, { id, token, now, ttl_ms: ttlMs })) > 0;
  }

  async renewClaim(id: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.#db.run(UPLOADS.renewClaim, { id, token, ttl_ms: ttlMs })) > 0;
  }

  async releaseClaim(id: string, token: string): Promise<void> {
    await this.#db.run(UPLOADS.releaseClaim, { id, token });
  }

  complete(id: string, token: string, file: FileRecord, maxStoredBytes: number | null): Promise<CompleteResult> {
    return transaction(this.#pool, async (db) => {
      // Project first, then the row (the order insertFile and addPart keep too: no deadlock).
      if (maxStoredBytes !== null) await db.run(LOCK.project, { project: file.project });
      const u = await db.get(UPLOADS.lock, { id });
      if (u === undefined) return 'lost';
      if (maxStoredBytes !== null) {
        const stored = (await db.get(PROJECTS.storedBytes, { project: file.project }))?.n ?? 0;
        if (stored + file.bytes > maxStoredBytes) {
          // Nothing written yet; but the claim may be gone already: say which.
          return (await db.run(UPLOADS.holdsClaim, { id, token })) > 0 ? 'quota' : 'lost';
        }
      }
      if ((await db.run(UPLOADS.markCompleted, { id, token, file_id: file.id })) === 0) return 'lost';
      await db.run(FILES.insert, fileToParams(file));
      return 'completed';
    });
  }

  async cancel(id: string): Promise<UploadRecord | null> {
    const row = await this.#db.get(UPLOADS.cancel, { id });
    return row === undefined ? null : rowToUpload(row);
  }

  async listExpired(now: number, limit: number): Promise<UploadRecord[]> {
    return (await this.#db.all(UPLOADS.listExpired, { now, limit })).map(rowToUpload);
  }

  async expire(id: string, now: number): Promise<boolean> {
    return (await this.#db.run(UPLOADS.expire, { id, now })) > 0;
  }

  async listUnswept(limit: number): Promise<string[]> {
    return (await this.#db.all(UPLOADS.listUnswept, { limit })).map((r) => r.upload_id);
  }

  async deleteParts(uploadId: string): Promise<number> {
    return this.#db.run(UPLOADS.deleteParts, { id: uploadId });
  }
}
