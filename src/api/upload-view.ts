import { type FileRecord, serializeFile } from '../domain/index.js';
import type { UploadPartRecord, UploadRecord } from '../store/upload-store.js';
import { effectiveStatus } from './upload-params.js';

/** OpenAI's `Upload` object; `file` is the completed File (null until then, or once it is deleted). */
export function serializeUpload(u: UploadRecord, file: FileRecord | null = null, now?: number): Record<string, unknown> {
  return {
    id: u.id,
    object: 'upload',
    bytes: u.bytes,
    created_at: u.createdAt,
    filename: u.filename,
    purpose: u.purpose,
    status: now === undefined ? u.status : effectiveStatus(u, now),
    expires_at: u.expiresAt,
    file: file === null ? null : serializeFile(file),
  };
}

/** OpenAI's `UploadPart` object. */
export function serializePart(p: UploadPartRecord): Record<string, unknown> {
  return { id: p.id, object: 'upload.part', created_at: p.createdAt, upload_id: p.uploadId };
}
