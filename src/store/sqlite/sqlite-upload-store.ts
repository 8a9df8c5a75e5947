import type Database from 'better-sqlite3';

import type { FileRecord } from '../../domain/index.js';
import { FILE_COLUMNS, insertSql } from '../sql/columns.js';
import { type FileParams, fileToParams } from '../sql/rows.js';
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

/** A claim is live while `claim_expires_at > @now_ms`. */
const NO_LIVE_CLAIM = '(claim_expires_at IS NULL OR claim_expires_at <= @now_ms)';

function prepare(db: Database.Database) {
  return {
    insert: db.prepare<UploadParams>(
      `INSERT INTO uploads (id, project, filename, purpose, bytes, mime_type, created_at, expires_at, file_expires_after)
       VALUES (@id, @project, @filename, @purpose, @bytes, @mime_type, @created_at, @expires_at, @file_expires_after)`,
    ),
    get: db.prepare<[string], UploadRow>(`SELECT ${UPLOAD_SELECT} FROM uploads WHERE id = ?`),
    partBytes: db.prepare<[string], number>('SELECT COALESCE(SUM(bytes), 0) FROM upload_parts WHERE upload_id = ?').pluck(),
    insertPart: db.prepare<UploadPartRow>(
      'INSERT INTO upload_parts (id, upload_id, blob_key, bytes, created_at) VALUES (@id, @upload_id, @blob_key, @bytes, @created_at)',
    ),
    listParts: db.prepare<[string], UploadPartRow>('SELECT id, upload_id, blob_key, bytes, created_at FROM upload_parts WHERE upload_id = ? ORDER BY seq'),
    claim: db.prepare<{ id: string; token: string; now: number; now_ms: number; until: number }>(
      `UPDATE uploads SET claim_token = @token, claim_expires_at = @until
       WHERE id = @id AND status = 'pending' AND expires_at > @now AND ${NO_LIVE_CLAIM}`,
    ),
    renewClaim: db.prepare<{ id: string; token: string; now_ms: number; until: number }>(
      `UPDATE uploads SET claim_expires_at = @until
       WHERE id = @id AND status = 'pending' AND claim_token = @token AND claim_expires_at > @now_ms`,
    ),
    releaseClaim: db.prepare<{ id: string; token: string }>(
      `UPDATE uploads SET claim_token = NULL, claim_expires_at = NULL WHERE id = @id AND claim_token = @token`,
    ),
    markCompleted: db.prepare<{ id: string; token: string; now_ms: number; file_id: string }>(
      `UPDATE uploads SET status = 'completed', file_id = @file_id, claim_token = NULL, claim_expires_at = NULL
       WHERE id = @id AND status = 'pending' AND claim_token = @token AND claim_expires_at > @now_ms`,
    ),
    holdsClaim: db
      .prepare<{ id: string; token: string; now_ms: number }, number>(
        `SELECT 1 FROM uploads WHERE id = @id AND status = 'pending' AND claim_token = @token AND claim_expires_at > @now_ms`,
      )
      .pluck(),
    storedBytes: db.prepare<[string], number>('SELECT COALESCE(SUM(bytes), 0) FROM files WHERE project = ?').pluck(),
    insertFile: db.prepare<FileParams>(insertSql('files', FILE_COLUMNS)),
    cancel: db.prepare<[string]>(`UPDATE uploads SET status = 'cancelled', claim_token = NULL, claim_expires_at = NULL WHERE id = ? AND status = 'pending'`),
    listExpired: db.prepare<{ now: number; now_ms: number; limit: number }, UploadRow>(
      `SELECT ${UPLOAD_SELECT} FROM uploads
       WHERE status = 'pending' AND expires_at <= @now AND ${NO_LIVE_CLAIM}
       ORDER BY expires_at, seq LIMIT @limit`,
    ),
    expire: db.prepare<{ id: string; now: number; now_ms: number }>(
      `UPDATE uploads SET status = 'expired', claim_token = NULL, claim_expires_at = NULL
       WHERE id = @id AND status = 'pending' AND expires_at <= @now AND ${NO_LIVE_CLAIM}`,
    ),
    listUnswept: db
      .prepare<[number], string>(
        `SELECT DISTINCT p.upload_id FROM upload_parts p JOIN uploads u ON u.id = p.upload_id WHERE u.status <> 'pending' LIMIT ?`,
      )
      .pluck(),
    deleteParts: db.prepare<[string]>(
      `DELETE FROM upload_parts WHERE upload_id = ? AND EXISTS (SELECT 1 FROM uploads u WHERE u.id = upload_parts.upload_id AND u.status <> 'pending')`,
    ),
  };
}

/**
 * UploadStore on the SQLite file (see upload-store.ts). One process uses the file, so every
 * check-then-write is one IMMEDIATE transaction; the claim's clock is this process's.
 */
export class SqliteUploadStore implements UploadStore {
  readonly #s: ReturnType<typeof prepare>;
  readonly #addPartTx: Database.Transaction<(part: UploadPartRecord, now: number) => AddPartResult>;
  readonly #completeTx: Database.Transaction<(id: string, token: string, file: FileRecord, max: number | null) => CompleteResult>;
  readonly #cancelTx: Database.Transaction<(id: string) => UploadRecord | null>;

  constructor(db: Database.Database) {
    const s = (this.#s = prepare(db));
    this.#addPartTx = db.transaction((part: UploadPartRecord, now: number): AddPartResult => {
      const u = s.get.get(part.uploadId);
      if (u === undefined || u.status !== 'pending' || u.expires_at <= now) return 'not_pending';
      if ((s.partBytes.get(part.uploadId) ?? 0) + part.bytes > u.bytes) return 'too_many_bytes';
      s.insertPart.run(partToParams(part));
      return 'added';
    });
    this.#completeTx = db.transaction((id: string, token: string, file: FileRecord, max: number | null): CompleteResult => {
      const now_ms = Date.now();
      if (s.holdsClaim.get({ id, token, now_ms }) === undefined) return 'lost';
      if (max !== null && (s.storedBytes.get(file.project) ?? 0) + file.bytes > max) return 'quota';
      s.markCompleted.run({ id, token, now_ms, file_id: file.id });
      s.insertFile.run(fileToParams(file));
      return 'completed';
    });
    this.#cancelTx = db.transaction((id: string): UploadRecord | null => {
      if (s.cancel.run(id).changes === 0) return null;
      const row = s.get.get(id);
      return row === undefined ? null : rowToUpload(row);
    });
  }

  insert(upload: UploadRecord): Promise<void> {
    return settle(() => {
      if (upload.status !== 'pending' || upload.fileId !== null) throw new Error('A new upload is pending, without a file');
      this.#s.insert.run(uploadToParams(upload));
    });
  }

  get(id: string): Promise<UploadRecord | null> {
    return settle(() => {
      const row = this.#s.get.get(id);
      return row === undefined ? null : rowToUpload(row);
    });
  }

  addPart(part: UploadPartRecord, now: number): Promise<AddPartResult> {
    return settle(() => this.#addPartTx.immediate(part, now));
  }

  listParts(uploadId: string): Promise<UploadPartRecord[]> {
    return settle(() => this.#s.listParts.all(uploadId).map(rowToPart));
  }

  claim(id: string, token: string, now: number, ttlMs: number): Promise<boolean> {
    return settle(() => {
      const now_ms = Date.now();
      return this.#s.claim.run({ id, token, now, now_ms, until: now_ms + ttlMs }).changes > 0;
    });
  }

  renewClaim(id: string, token: string, ttlMs: number): Promise<boolean> {
    return settle(() => {
      const now_ms = Date.now();
      return this.#s.renewClaim.run({ id, token, now_ms, until: now_ms + ttlMs }).changes > 0;
    });
  }

  releaseClaim(id: string, token: string): Promise<void> {
    return settle(() => {
      this.#s.releaseClaim.run({ id, token });
    });
  }

  complete(id: string, token: string, file: FileRecord, maxStoredBytes: number | null): Promise<CompleteResult> {
    return settle(() => this.#completeTx.immediate(id, token, file, maxStoredBytes));
  }

  cancel(id: string): Promise<UploadRecord | null> {
    return settle(() => this.#cancelTx.immediate(id));
  }

  listExpired(now: number, limit: number): Promise<UploadRecord[]> {
    return settle(() => this.#s.listExpired.all({ now, now_ms: Date.now(), limit }).map(rowToUpload));
  }

  expire(id: string, now: number): Promise<boolean> {
    return settle(() => this.#s.expire.run({ id, now, now_ms: Date.now() }).changes > 0);
  }

  listUnswept(limit: number): Promise<string[]> {
    return settle(() => this.#s.listUnswept.all(limit));
  }

  deleteParts(uploadId: string): Promise<number> {
    return settle(() => this.#s.deleteParts.run(uploadId).changes);
  }
}

/** Runs synchronous work as a settled promise: a throw becomes a rejection. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
