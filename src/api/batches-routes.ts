import type { FastifyInstance, FastifyRequest } from 'fastify';

import type { ThroughputTracker } from '../analytics/index.js';
import { CORE_ENDPOINTS } from '../config.js';
import { batchNotFound, type BatchRecord, fileNotFound, InvalidRequestError, isWellFormedId, newBatch, nowSeconds, QuotaExceededError } from '../domain/index.js';
import type { AppDeps } from './app-deps.js';
import { parseCreateBatch } from './batch-params.js';
import { presentBatch, queuePositions } from './cluster-view.js';
import { listEnvelope, parseAfter, parseLimit } from './list-params.js';
import { limitsOf, listScope, projectHeader, projectOf, visible } from './tenancy.js';

type IdParams = { Params: { id: string } };

export function batchesRoutes(app: FastifyInstance, deps: AppDeps, rates: ThroughputTracker): void {
  const { store, engine, config } = deps;
  const endpoints = [...CORE_ENDPOINTS, ...config.extraEndpoints];

  /** The batch as the store reads it (live counters over every replica's shards) with its queue position. */
  const present = async (b: BatchRecord): Promise<Record<string, unknown>> => presentBatch(b, await queuePositions(deps), rates);

  const getBatchOr404 = async (req: FastifyRequest, id: string): Promise<BatchRecord> => {
    const b = isWellFormedId(id) ? await store.getBatch(id) : null;
    if (!b || !visible(req, b)) throw batchNotFound(id);
    return b;
  };

  app.post('/v1/batches', async (req) => {
    const p = parseCreateBatch(req.body, endpoints);
    const input = isWellFormedId(p.inputFileId) ? await store.getFile(p.inputFileId) : null;
    const now = nowSeconds();
    // An expired file is as good as gone (the sweeper removes it within BESH_SWEEP_INTERVAL_MS);
    // another project's file is as unknown as a missing one.
    if (!input || !visible(req, input) || (input.expiresAt !== null && input.expiresAt <= now)) throw fileNotFound(p.inputFileId, 'input_file_id');
    if (input.purpose !== 'batch') {
      throw new InvalidRequestError(`File ${input.id} has purpose '${input.purpose}'; a batch needs a file uploaded with purpose 'batch'.`, {
        param: 'input_file_id',
        code: 'invalid_file_purpose',
      });
    }
    // A batch lives in its input file's project: a key's own, or any for an admin key.
    const project = req.principal.admin && projectHeader(req) === null ? input.project : projectOf(req);
    if (project !== input.project) throw fileNotFound(p.inputFileId, 'input_file_id');
    const batch = newBatch({
      project,
      inputFileId: input.id,
      endpoint: p.endpoint,
      completionWindow: p.completionWindow,
      metadata: p.metadata,
      createdAt: now,
      expiresAt: now + p.windowSeconds,
      // Without output_expires_after, the output/error files live BESH_OUTPUT_FILE_TTL (null = forever).
      outputExpiresAfter: p.outputExpiresAfter ?? config.outputFileTtlSeconds,
    });
    const limits = await limitsOf(store, config, project);
    const refused = await engine.create(batch, { requests: input.lines ?? 0, ...limits });
    if (refused === 'maxActiveBatches') {
      throw new QuotaExceededError(
        `Project '${project}' already has ${limits.maxActiveBatches} unfinished batches, its limit; wait for one to finish or cancel one.`,
        { param: 'input_file_id', code: 'batch_quota_exceeded' },
      );
    }
    if (refused === 'maxQueuedRequests') {
      throw new QuotaExceededError(
        `This batch's ${input.lines ?? 0} requests would take project '${project}' past its limit of ${limits.maxQueuedRequests} queued requests; wait for running batches to progress.`,
        { param: 'input_file_id', code: 'request_quota_exceeded' },
      );
    }
    return present((await store.getBatch(batch.id)) ?? batch);
  });

  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/batches', async (req) => {
    const page = await store.listBatches({ project: listScope(req, req.query.project), limit: parseLimit(req.query.limit, 20, 100), after: parseAfter(req.query.after, 'batch_') });
    const positions = await queuePositions(deps);
    return listEnvelope(page.data.map((b) => presentBatch(b, positions, rates)), page.hasMore);
  });

  app.get<IdParams>('/v1/batches/:id', async (req) => present(await getBatchOr404(req, req.params.id)));

  app.post<IdParams>('/v1/batches/:id/cancel', async (req) => {
    await getBatchOr404(req, req.params.id);
    return present(await engine.cancel(req.params.id));
  });

  app.delete<IdParams>('/v1/batches/:id', async (req) => {
    const b = await getBatchOr404(req, req.params.id);
    await engine.deleteBatch(b.id);
    return { id: b.id, object: 'batch', deleted: true };
  });
}
