import type { FastifyInstance } from 'fastify';

import { batchNotFound, InvalidRequestError, isWellFormedId } from '../domain/index.js';
import { MAX_CUSTOM_ID_LENGTH } from '../jsonl/index.js';
import type { ResultKind } from '../store/blob-keys.js';
import type { AppDeps } from './app-deps.js';
import { decodeCursor, encodeCursor } from './results-cursor.js';
import { lookupResult } from './results-lookup.js';
import { planResults, streamPlan } from './results-reader.js';
import { visible } from './tenancy.js';

type ResultsRequest = { Params: { id: string }; Querystring: Record<string, string | undefined> };

/** Response headers of `GET /v1/batches/{id}/results` (docs/results.md). */
export const RESULTS_HEADERS = {
  cursor: 'x-besh-cursor',
  complete: 'x-besh-results-complete',
  status: 'x-besh-batch-status',
  kind: 'x-besh-result-kind',
  bytesRead: 'x-besh-bytes-read',
} as const;

const KIND_PARAM: Record<string, readonly ResultKind[]> = { all: ['output', 'error'], output: ['output'], error: ['error'] };

/**
 * `GET /v1/batches/{id}/results`: the result lines written so far, while the batch runs and after
 * (a BESH extension; the SDKs do not know it). See docs/results.md. Registered before
 * `/v1/batches/:id`; scoped like every batch route (another project's batch is a 404).
 */
export function resultsRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { store, blobs } = deps;

  app.get<ResultsRequest>('/v1/batches/:id/results', async (req, reply) => {
    const id = req.params.id;
    const batch = isWellFormedId(id) ? await store.getBatch(id) : null;
    if (!batch || !visible(req, batch)) throw batchNotFound(id);
    const q = req.query;
    for (const name of ['after', 'kind', 'custom_id'] as const) {
      if (q[name] !== undefined && typeof q[name] !== 'string') throw new InvalidRequestError(`Invalid '${name}': give it once.`, { param: name, code: 'invalid_value' });
    }
    void reply.header('cache-control', 'no-store');

    if (q.custom_id !== undefined) {
      if (q.after !== undefined || q.kind !== undefined) {
        throw new InvalidRequestError("'custom_id' cannot be combined with 'after' or 'kind'.", { param: 'custom_id', code: 'invalid_value' });
      }
      if (q.custom_id === '' || q.custom_id.length > MAX_CUSTOM_ID_LENGTH) {
        throw new InvalidRequestError(`Invalid 'custom_id': expected 1 to ${MAX_CUSTOM_ID_LENGTH} characters.`, { param: 'custom_id', code: 'invalid_value' });
      }
      const stats = { bytesRead: 0 };
      let r;
      try {
        r = await lookupResult({ store, blobs }, batch, q.custom_id, stats);
      } finally {
        // On the 404s too: how little a lookup reads is part of what it promises.
        void reply.header(RESULTS_HEADERS.bytesRead, String(stats.bytesRead));
      }
      return reply.type('application/jsonl').header(RESULTS_HEADERS.kind, r.kind).header('content-length', r.line.length).send(r.line);
    }

    const kinds = KIND_PARAM[q.kind ?? 'all'];
    if (kinds === undefined || !Object.hasOwn(KIND_PARAM, q.kind ?? 'all')) {
      throw new InvalidRequestError("Invalid 'kind': expected one of all, output, error.", { param: 'kind', code: 'invalid_value' });
    }
    const token = q.after === undefined || q.after === '' ? null : decodeCursor(batch.id, q.after);
    const plan = await planResults({ store, blobs }, batch, token, kinds);
    return reply
      .type('application/jsonl')
      .header(RESULTS_HEADERS.cursor, encodeCursor(batch.id, plan.cursor))
      .header(RESULTS_HEADERS.complete, String(plan.complete))
      .header(RESULTS_HEADERS.status, plan.status)
      .header('content-length', plan.bytes)
      .send(plan.bytes === 0 ? '' : streamPlan(blobs, batch.id, plan.pieces));
  });
}
