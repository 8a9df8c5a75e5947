import { randomBytes } from 'node:crypto';

import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';

import {
  type FileRecord,
  InvalidRequestError,
  isWellFormedId,
  newFileId,
  newUploadId,
  newUploadPartId,
  nowSeconds,
  printableId,
  QuotaExceededError,
} from '../domain/index.js';
import { inputFileKey, uploadPartKey, uploadPrefix } from '../store/blob-keys.js';
import type { UploadRecord } from '../store/upload-store.js';
import type { AppDeps } from './app-deps.js';
import { StorageFloor } from './disk-space.js';
import { limitsOf, projectOf, visible } from './tenancy.js';
import { assembleParts } from './upload-assembly.js';
import {
  completionInProgress,
  effectiveStatus,
  MAX_PART_BYTES,
  notPending,
  parseCompleteUpload,
  parseCreateUpload,
  pastDeclaredBytes,
  uploadNotFound,
} from './upload-params.js';
import { receivePart } from './upload-part.js';
import { serializePart, serializeUpload } from './upload-view.js';

type IdParams = { Params: { id: string } };

export interface UploadsRoutesHooks {
  /** A file was stored by completing an upload (metrics, dashboard). */
  uploaded?(bytes: number, project: string): void;
}

/** How long a completion's claim lives without renewal, and how often the completing request renews it. */
const CLAIM_TTL_MS = 30_000;
const CLAIM_RENEW_MS = 10_000;
const FLOOR_CHECK_BYTES = 8 * 1024 * 1024;

/**
 * OpenAI's Uploads API (docs/uploads.md): create an upload, add parts (each streamed to the blob
 * store), complete it into a File checked line by line as a direct upload is, or cancel it. Every
 * step is a compare-and-set in the store, so create, parts and complete may each reach a
 * different replica of a cluster.
 */
export function uploadsRoutes(app: FastifyInstance, deps: AppDeps, hooks: UploadsRoutesHooks = {}): void {
  const { store, blobs, config } = deps;
  const uploads = store.uploads;
  // Checked every 8 MiB (room for the next 8 MiB each time): a statfs per MiB costs ~5% of a completion.
  const floor = config.minFreeBytes > 0 ? new StorageFloor(() => blobs.freeBytes(), config.minFreeBytes, FLOOR_CHECK_BYTES) : null;

  const getUploadOr404 = async (req: FastifyRequest, id: string): Promise<UploadRecord> => {
    const u = isWellFormedId(id) && id.startsWith('upload_') ? await uploads.get(id) : null;
    if (!u || !visible(req, u)) throw uploadNotFound(id);
    return u;
  };

  const overStoredBytes = (project: string, max: number): QuotaExceededError =>
    new QuotaExceededError(`Project '${project}' would hold more than its ${max}-byte storage limit; delete files or batches first.`, {
      param: 'bytes',
      code: 'storage_quota_exceeded',
    });

  /** Removes the parts' blobs, then their rows; a failure is left to the upload sweeper. */
  const removeParts = async (id: string, log: FastifyBaseLogger): Promise<void> => {
    try {
      await blobs.deletePrefix(uploadPrefix(id));
      await uploads.deleteParts(id);
    } catch (err) {
      log.warn({ err, uploadId: id }, 'upload: parts not removed yet (the sweeper retries)');
    }
  };

  /** A completed upload as its File's answer: the File as it is now (null once deleted). */
  const completedView = async (u: UploadRecord): Promise<Record<string, unknown>> =>
    serializeUpload(u, u.fileId === null ? null : await store.getFile(u.fileId));

  app.post('/v1/uploads', async (req) => {
    const project = projectOf(req);
    const p = parseCreateUpload(req.body, config.maxUploadBytes);
    const { maxStoredBytes } = await limitsOf(store, config, project);
    // The File holds at least the declared bytes (gzip only grows once decoded): refused now, not
    // after gigabytes of parts. Checked again, with the real size, in the write that completes it.
    if (maxStoredBytes !== null && (await store.projectUsage(project)).storedBytes + p.bytes > maxStoredBytes) throw overStoredBytes(project, maxStoredBytes);
    const now = nowSeconds();
    const upload: UploadRecord = {
      id: newUploadId(),
      project,
      filename: p.filename,
      purpose: 'batch',
      bytes: p.bytes,
      mimeType: p.mimeType,
      createdAt: now,
      expiresAt: now + config.uploadTtlSeconds,
      status: 'pending',
      fileId: null,
      fileExpiresAfter: p.fileExpiresAfter ?? null,
    };
    await uploads.insert(upload);
    req.log.info({ uploadId: upload.id, project, bytes: upload.bytes }, 'upload created');
    return serializeUpload(upload);
  });

  app.post<IdParams>('/v1/uploads/:id/parts', async (req) => {
    const u = await getUploadOr404(req, req.params.id);
    const now = nowSeconds();
    const status = effectiveStatus(u, now);
    if (status !== 'pending') throw notPending(u.id, status, 'part');
    const received = (await uploads.listParts(u.id)).reduce((n, x) => n + x.bytes, 0);
    if (received >= u.bytes) throw pastDeclaredBytes(u, received);
    const partId = newUploadPartId();
    const key = uploadPartKey(u.id, partId);
    const bytes = await receivePart(req, blobs, key, { remaining: u.bytes - received, pastDeclared: () => pastDeclaredBytes(u, received), floor });
    const part = { id: partId, uploadId: u.id, blobKey: key, bytes, createdAt: nowSeconds() };
    let added;
    try {
      added = await uploads.addPart(part, part.createdAt);
    } catch (err) {
      await blobs.delete(key);
      throw err;
    }
    if (added !== 'added') {
      await blobs.delete(key);
      if (added === 'too_many_bytes') {
        // Parts sent in parallel: another one landed first.
        const now2 = (await uploads.listParts(u.id)).reduce((n, x) => n + x.bytes, 0);
        throw pastDeclaredBytes(u, now2);
      }
      const current = await uploads.get(u.id);
      throw notPending(u.id, current ? effectiveStatus(current, nowSeconds()) : 'gone', 'part');
    }
    return serializePart(part);
  });

  app.post<IdParams>('/v1/uploads/:id/complete', async (req) => {
    const u = await getUploadOr404(req, req.params.id);
    const p = parseCompleteUpload(req.body);
    const now = nowSeconds();
    const status = effectiveStatus(u, now);
    // Idempotent: a client retrying a completion whose answer it lost gets the same File.
    if (status === 'completed') return completedView(u);
    if (status !== 'pending') throw notPending(u.id, status, 'complete');

    const byId = new Map((await uploads.listParts(u.id)).map((x) => [x.id, x]));
    const parts = p.partIds.map((id) => {
      const part = byId.get(id);
      if (!part) throw new InvalidRequestError(`No part ${printableId(id)} in upload ${u.id}.`, { param: 'part_ids', code: 'part_not_found' });
      return part;
    });
    const total = parts.reduce((n, x) => n + x.bytes, 0);
    if (total !== u.bytes) {
      throw new InvalidRequestError(`The parts listed hold ${total} bytes, but upload ${u.id} was created with bytes=${u.bytes}.`, {
        param: 'part_ids',
        code: 'upload_size_mismatch',
      });
    }
    const { maxStoredBytes } = await limitsOf(store, config, u.project);
    if (maxStoredBytes !== null && (await store.projectUsage(u.project)).storedBytes + u.bytes > maxStoredBytes) throw overStoredBytes(u.project, maxStoredBytes);

    const token = randomBytes(16).toString('hex');
    if (!(await uploads.claim(u.id, token, now, CLAIM_TTL_MS))) {
      const current = (await uploads.get(u.id)) ?? u;
      const s = effectiveStatus(current, nowSeconds());
      if (s === 'completed') return completedView(current);
      if (s === 'pending') throw completionInProgress(u.id);
      throw notPending(u.id, s, 'complete');
    }

    const fileId = newFileId();
    const blobKey = inputFileKey(fileId);
    const lost = new AbortController();
    const renew = setInterval(() => {
      uploads.renewClaim(u.id, token, CLAIM_TTL_MS).then(
        (held) => {
          if (!held) lost.abort(notPending(u.id, 'no longer pending', 'complete'));
        },
        (err: unknown) => req.log.warn({ err, uploadId: u.id }, 'upload: claim renewal failed'),
      );
    }, CLAIM_RENEW_MS);
    let file: FileRecord;
    try {
      const made = await assembleParts(blobs, parts, blobKey, { maxUploadBytes: config.maxUploadBytes, maxLineBytes: config.maxLineBytes, md5: p.md5, floor, signal: lost.signal });
      const created = nowSeconds();
      const ttl = u.fileExpiresAfter ?? config.inputFileTtlSeconds;
      file = { id: fileId, filename: u.filename, purpose: 'batch', bytes: made.bytes, createdAt: created, expiresAt: ttl === null ? null : created + ttl, blobKey, batchId: null, project: u.project, lines: made.lines };
    } catch (err) {
      await uploads.releaseClaim(u.id, token).catch(() => undefined);
      throw await explainLoss(err);
    } finally {
      clearInterval(renew);
    }

    let outcome;
    try {
      outcome = await uploads.complete(u.id, token, file, maxStoredBytes);
    } catch (err) {
      // The write may have committed with its answer lost (a dropped connection): then the File is real.
      if ((await uploads.get(u.id).catch(() => null))?.fileId !== fileId) {
        await blobs.delete(blobKey);
        await uploads.releaseClaim(u.id, token).catch(() => undefined);
        throw err;
      }
      outcome = 'completed' as const;
    }
    if (outcome !== 'completed') {
      await blobs.delete(blobKey);
      if (outcome === 'quota') {
        await uploads.releaseClaim(u.id, token).catch(() => undefined);
        throw overStoredBytes(u.project, maxStoredBytes!);
      }
      throw await explainLoss(null);
    }
    await removeParts(u.id, req.log);
    hooks.uploaded?.(file.bytes, u.project);
    req.log.info({ uploadId: u.id, fileId, project: u.project, bytes: file.bytes, parts: parts.length }, 'upload completed');
    return serializeUpload({ ...u, status: 'completed', fileId }, file);

    /** When the claim was lost meanwhile (a cancel, or expiry after a stalled renewal), say what the upload is now. */
    async function explainLoss(err: unknown): Promise<unknown> {
      const current = await uploads.get(u.id).catch(() => null);
      if (current && current.status !== 'pending') return notPending(u.id, current.status, 'complete');
      return err ?? notPending(u.id, current ? effectiveStatus(current, nowSeconds()) : 'gone', 'complete');
    }
  });

  app.post<IdParams>('/v1/uploads/:id/cancel', async (req) => {
    const u = await getUploadOr404(req, req.params.id);
    if (u.status === 'cancelled') return serializeUpload(u); // idempotent, as a batch cancel is
    const status = effectiveStatus(u, nowSeconds());
    if (status !== 'pending') throw notPending(u.id, status, 'cancel');
    const cancelled = await uploads.cancel(u.id);
    if (cancelled === null) {
      const current = (await uploads.get(u.id)) ?? u;
      if (current.status === 'cancelled') return serializeUpload(current);
      throw notPending(u.id, current.status, 'cancel');
    }
    await removeParts(u.id, req.log);
    req.log.info({ uploadId: u.id, project: u.project }, 'upload cancelled');
    return serializeUpload(cancelled);
  });

  // Not part of OpenAI's API: what `besh submit` reads to choose between a direct upload and parts.
  app.get('/v1/uploads/limits', async () => ({
    object: 'upload.limits',
    max_file_bytes: config.maxFileBytes,
    max_upload_bytes: config.maxUploadBytes,
    max_part_bytes: MAX_PART_BYTES,
    upload_ttl_seconds: config.uploadTtlSeconds,
  }));
}
