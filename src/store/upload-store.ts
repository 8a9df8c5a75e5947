import type { FileRecord } from '../domain/index.js';

/**
 * OpenAI's Uploads API (files larger than one request, sent in parts): the upload objects and
 * their parts. Part bytes live in the blob store (`blob-keys.ts` names their keys); the rows say
 * which parts exist and their sizes. Completing an upload records its File in the same write
 * (within the project's stored-bytes quota). Owned by `src/store/*-upload-*`.
 *
 * Times: `createdAt` / `expiresAt` and every `now` argument are unix seconds given by the caller;
 * the completion claim's expiry is milliseconds by the store's own clock (as leases are), so the
 * replicas of a cluster need not agree on the time.
 *
 * Every change of status is a compare-and-set, so any replica may take any step:
 *
 *   pending ──complete (holding the claim)──► completed
 *      │  └──cancel─────────────────────────► cancelled
 *      └─────expire (no live claim)─────────► expired
 *
 * Part rows outlive the status change until their blobs are gone (`deleteParts`): a store
 * whose cleanup was interrupted still lists them (`listUnswept`), so the sweeper finishes it.
 */
export interface UploadStore {
  /** Records a new upload (status pending). */
  insert(upload: UploadRecord): Promise<void>;
  get(id: string): Promise<UploadRecord | null>;
  /**
   * Records a part, only while the upload is pending and `now` is before its `expiresAt`, and
   * only if the bytes of its parts, this one included, stay within the upload's declared bytes —
   * checked in the same write, so parts sent in parallel cannot together pass the declared size.
   */
  addPart(part: UploadPartRecord, now: number): Promise<AddPartResult>;
  /** The upload's parts, oldest first. */
  listParts(uploadId: string): Promise<UploadPartRecord[]>;
  /**
   * Takes the completion claim: only while the upload is pending, `now` is before its
   * `expiresAt`, and nobody holds a live claim. While the claim lives the upload cannot expire,
   * and nobody else can claim it. Returns whether it was taken.
   */
  claim(id: string, token: string, now: number, ttlMs: number): Promise<boolean>;
  /** Extends a claim still held with `token` (false: it was lost, or the upload left pending). */
  renewClaim(id: string, token: string, ttlMs: number): Promise<boolean>;
  /** Gives the claim back; the upload stays pending (a completion that failed). */
  releaseClaim(id: string, token: string): Promise<void>;
  /**
   * pending → completed, holding the claim `token`, in one write with the File's row — and only
   * if the File's project stays within `maxStoredBytes` (null: no limit). `quota`: nothing
   * written (the claim is still held); `lost`: the upload is no longer pending under this claim.
   */
  complete(id: string, token: string, file: FileRecord, maxStoredBytes: number | null): Promise<CompleteResult>;
  /** pending → cancelled (whether or not a completion is running: its final write then fails). Null when it was not pending. */
  cancel(id: string): Promise<UploadRecord | null>;
  /** Pending uploads whose `expiresAt` is at or before `now` and that no live claim holds, oldest expiry first. */
  listExpired(now: number, limit: number): Promise<UploadRecord[]>;
  /** pending → expired, only if it still is expired at `now` and no live claim holds it. */
  expire(id: string, now: number): Promise<boolean>;
  /** Uploads no longer pending that still have part rows (their blobs may still exist), at most `limit`. */
  listUnswept(limit: number): Promise<string[]>;
  /** Forgets the part rows of an upload that is no longer pending (after its blobs were deleted); returns how many. */
  deleteParts(uploadId: string): Promise<number>;
}

export const UPLOAD_STATUSES = ['pending', 'completed', 'cancelled', 'expired'] as const;
export type UploadStatus = (typeof UPLOAD_STATUSES)[number];

export interface UploadRecord {
  id: string;
  project: string;
  filename: string;
  /** Always 'batch' in BESH (the only purpose it stores). */
  purpose: string;
  /** The size the client declared: the parts must add up to exactly this. */
  bytes: number;
  mimeType: string;
  /** Unix seconds. */
  createdAt: number;
  expiresAt: number;
  status: UploadStatus;
  /** The File made by completing it. */
  fileId: string | null;
  /** `expires_after.seconds` of the create call: the File's lifetime (null: the server's default). */
  fileExpiresAfter: number | null;
}

export interface UploadPartRecord {
  id: string;
  uploadId: string;
  blobKey: string;
  bytes: number;
  /** Unix seconds. */
  createdAt: number;
}

/** `added`; `not_pending`: the upload is not pending, or expired at `now`; `too_many_bytes`: past the declared size. */
export type AddPartResult = 'added' | 'not_pending' | 'too_many_bytes';
export type CompleteResult = 'completed' | 'quota' | 'lost';

// ── rows, as both SQL dialects store them ──────────────────────────────────────────────────────

/** An `uploads` row (integers as JS numbers in both dialects). */
export interface UploadRow {
  id: string;
  project: string;
  filename: string;
  purpose: string;
  bytes: number;
  mime_type: string;
  created_at: number;
  expires_at: number;
  status: string;
  file_id: string | null;
  file_expires_after: number | null;
}

/** An `upload_parts` row. */
export interface UploadPartRow {
  id: string;
  upload_id: string;
  blob_key: string;
  bytes: number;
  created_at: number;
}

/** Columns a new upload row names (the status, file and claim start empty). */
export type UploadParams = Omit<UploadRow, 'status' | 'file_id'>;

export const uploadToParams = (u: UploadRecord): UploadParams => ({
  id: u.id,
  project: u.project,
  filename: u.filename,
  purpose: u.purpose,
  bytes: u.bytes,
  mime_type: u.mimeType,
  created_at: u.createdAt,
  expires_at: u.expiresAt,
  file_expires_after: u.fileExpiresAfter,
});

export const rowToUpload = (r: UploadRow): UploadRecord => ({
  id: r.id,
  project: r.project,
  filename: r.filename,
  purpose: r.purpose,
  bytes: r.bytes,
  mimeType: r.mime_type,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  // The column only ever holds values written from an UploadStatus.
  status: r.status as UploadStatus,
  fileId: r.file_id,
  fileExpiresAfter: r.file_expires_after,
});

export const partToParams = (p: UploadPartRecord): UploadPartRow => ({
  id: p.id,
  upload_id: p.uploadId,
  blob_key: p.blobKey,
  bytes: p.bytes,
  created_at: p.createdAt,
});

export const rowToPart = (r: UploadPartRow): UploadPartRecord => ({
  id: r.id,
  uploadId: r.upload_id,
  blobKey: r.blob_key,
  bytes: r.bytes,
  createdAt: r.created_at,
});

/** The columns of an upload as the store reads it (never the claim). */
export const UPLOAD_SELECT = 'id, project, filename, purpose, bytes, mime_type, created_at, expires_at, status, file_id, file_expires_after';
