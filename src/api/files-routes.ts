import type { FastifyInstance, FastifyRequest } from 'fastify';

import {
  ConflictError,
  FILE_PURPOSES,
  fileNotFound,
  type FilePurpose,
  InvalidRequestError,
  isWellFormedId,
  QuotaExceededError,
  serializeFile,
} from '../domain/index.js';
import type { AppDeps } from './app-deps.js';
import { StorageFloor } from './disk-space.js';
import { receiveUpload } from './file-upload.js';
import { listEnvelope, parseAfter, parseLimit, parseOrder } from './list-params.js';
import { limitsOf, listScope, projectOf, visible } from './tenancy.js';

type IdParams = { Params: { id: string } };

export interface FilesRoutesHooks {
  /** A file was stored (metrics). */
  uploaded?(bytes: number, project: string): void;
}

export function filesRoutes(app: FastifyInstance, deps: AppDeps, hooks: FilesRoutesHooks = {}): void {
  const { store, blobs, config } = deps;
  const floor = new StorageFloor(() => blobs.freeBytes(), config.minFreeBytes);

  const getFileOr404 = async (req: FastifyRequest, id: string) => {
    const f = isWellFormedId(id) ? await store.getFile(id) : null;
    if (!f || !visible(req, f)) throw fileNotFound(id);
    return f;
  };

  const overStoredBytes = (project: string, max: number): QuotaExceededError =>
    new QuotaExceededError(`Project '${project}' would hold more than its ${max}-byte storage limit; delete files or batches first.`, {
      param: 'file',
      code: 'storage_quota_exceeded',
    });

  app.post('/v1/files', async (req) => {
    const project = projectOf(req);
    const { maxStoredBytes } = await limitsOf(store, config, project);
    // Refused before a byte is read when the project is already full; checked again, with the
    // file's real size, in the same write that records it.
    if (maxStoredBytes !== null && (await store.projectUsage(project)).storedBytes >= maxStoredBytes) throw overStoredBytes(project, maxStoredBytes);
    const received = await receiveUpload(req, blobs, {
      maxFileBytes: config.maxFileBytes,
      maxLineBytes: config.maxLineBytes,
      defaultTtlSeconds: config.inputFileTtlSeconds,
      floor: config.minFreeBytes > 0 ? floor : null,
    });
    const file = { ...received, project };
    let inserted: boolean;
    try {
      inserted = await store.insertFile(file, maxStoredBytes);
    } catch (err) {
      await blobs.delete(file.blobKey);
      throw err;
    }
    if (!inserted) {
      await blobs.delete(file.blobKey);
      throw overStoredBytes(project, maxStoredBytes!);
    }
    hooks.uploaded?.(file.bytes, project);
    return serializeFile(file);
  });

  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/files', async (req) => {
    const q = req.query;
    let purpose: FilePurpose | undefined;
    if (q.purpose !== undefined && q.purpose !== '') {
      if (!(FILE_PURPOSES as readonly string[]).includes(q.purpose)) {
        throw new InvalidRequestError(`Invalid 'purpose': expected one of ${FILE_PURPOSES.join(', ')}.`, { param: 'purpose', code: 'invalid_value' });
      }
      purpose = q.purpose as FilePurpose;
    }
    const page = await store.listFiles({ project: listScope(req, q.project), purpose, limit: parseLimit(q.limit, 10_000, 10_000), order: parseOrder(q.order), after: parseAfter(q.after, 'file-') });
    return listEnvelope(page.data.map(serializeFile), page.hasMore);
  });

  app.get<IdParams>('/v1/files/:id', async (req) => serializeFile(await getFileOr404(req, req.params.id)));

  app.get<IdParams>('/v1/files/:id/content', async (req, reply) => {
    const f = await getFileOr404(req, req.params.id);
    const size = await blobs.size(f.blobKey);
    if (size === null) throw fileNotFound(req.params.id);
    return reply
      .type('application/octet-stream')
      .header('content-length', size)
      .header('content-disposition', `attachment; filename="${f.filename.replace(/[^\w.-]/g, '_')}"`)
      .send(blobs.openRead(f.blobKey));
  });

  app.delete<IdParams>('/v1/files/:id', async (req) => {
    const f = await getFileOr404(req, req.params.id);
    if (await store.isInputOfUnfinishedBatch(f.id)) {
      throw new ConflictError(`File ${f.id} is the input of a batch that has not finished; cancel or wait for the batch before deleting it.`, { param: 'file_id', code: 'file_in_use' });
    }
    await store.deleteFile(f.id);
    await blobs.delete(f.blobKey);
    return { id: f.id, object: 'file', deleted: true };
  });
}
