import type { FastifyRequest } from 'fastify';

import type { Config } from '../config.js';
import {
  canSee,
  InvalidRequestError,
  isValidProjectName,
  PermissionError,
  printableId,
  PROJECT_NAME_RULE,
  type ProjectLimits,
  scopeOf,
} from '../domain/index.js';
import type { MetaStore } from '../store/meta-store.js';

/**
 * The project new objects of this request belong to: the key's own, or for an admin key the one
 * named by `OpenAI-Project` (the header the OpenAI SDKs send for their `project` option).
 */
export function projectOf(req: FastifyRequest): string {
  const p = req.principal;
  const asked = projectHeader(req);
  if (asked === null || asked === p.project) return p.project;
  if (!p.admin) {
    throw new PermissionError(`This API key belongs to project '${p.project}', not '${printableId(asked)}'.`, { param: 'OpenAI-Project', code: 'project_mismatch' });
  }
  return validProject(asked, 'OpenAI-Project');
}

/** The `OpenAI-Project` header, trimmed; null when absent or empty. */
export function projectHeader(req: FastifyRequest): string | null {
  const raw = req.headers['openai-project'];
  return typeof raw === 'string' && raw.trim() !== '' ? raw.trim() : null;
}

/**
 * The project filter of a list or a dashboard view: for admins `?project=` (else the
 * `OpenAI-Project` header, else all projects); the key's own project otherwise.
 */
export function listScope(req: FastifyRequest, asked: string | undefined): string | undefined {
  const scope = scopeOf(req.principal, asked === undefined || asked === '' ? (projectHeader(req) ?? undefined) : asked);
  return scope === undefined ? undefined : validProject(scope, 'project');
}

/** Another project's objects answer exactly as missing ones do. */
export const visible = (req: FastifyRequest, obj: { project: string } | null): boolean => obj !== null && canSee(req.principal, obj.project);

export function validProject(name: string, param: string): string {
  if (!isValidProjectName(name)) throw new InvalidRequestError(`Invalid project name '${printableId(name)}': ${PROJECT_NAME_RULE}.`, { param, code: 'invalid_project' });
  return name;
}

/** Limits as the API shows them (null = no limit). */
export function limitsView(l: ProjectLimits): Record<string, number | null> {
  return { max_stored_bytes: l.maxStoredBytes, max_active_batches: l.maxActiveBatches, max_queued_requests: l.maxQueuedRequests };
}

/**
 * A project's limits in force: its own where set (0 = no limit), the server's defaults
 * (BESH_PROJECT_MAX_*) otherwise.
 */
export async function limitsOf(store: MetaStore, config: Pick<Config, 'projectLimits'>, project: string): Promise<ProjectLimits> {
  return limitsInForce(await store.getProjectLimits(project), config);
}

/** A project's own limits (null = default, 0 = none) laid over the server's defaults. */
export function limitsInForce(own: ProjectLimits, config: Pick<Config, 'projectLimits'>): ProjectLimits {
  const pick = (o: number | null, d: number | null): number | null => (o === null ? d : o === 0 ? null : o);
  return {
    maxStoredBytes: pick(own.maxStoredBytes, config.projectLimits.maxStoredBytes),
    maxActiveBatches: pick(own.maxActiveBatches, config.projectLimits.maxActiveBatches),
    maxQueuedRequests: pick(own.maxQueuedRequests, config.projectLimits.maxQueuedRequests),
  };
}
