// A project's pipeline: validated YAML stored as numbered versions (a run keeps the version
// it started from), and dynamic uploads, by a running step, of more steps into its run.
import type { AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects } from '../../platform/effects.js';
import { BadRequestError, ConflictError, NotFoundError } from '../../platform/errors.js';
import { decodeCursor, encodeCursor, iso } from '../../platform/http/schemas.js';
import { recordAudit } from '../audit/audit.record.js';
import { getProject } from '../projects/projects.service.js';
import { appendSteps } from '../runs/runs.service.js';
import { insertPipelineVersion, latestPipelineVersion, stepsOfRun, type PipelineVersionRow } from '../runs/runs.queries.js';
import { jobOfToken } from './job-caller.js';
import { parsePipeline, type ParseOptions, type PipelineError } from './pipeline.parse.js';
import { findPipelineVersionByNumber, listPipelineVersions, lockLiveProject } from './pipelines.queries.js';

/** 400 with every located problem, so an editor or a CI log can point at each line. */
export class InvalidPipelineError extends BadRequestError {
  constructor(readonly errors: PipelineError[]) {
    const first = errors[0]!;
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
    super(`Line ${first.line}, column ${first.column}: ${first.message}${more}`, 'invalid_pipeline', { errors });
  }
}

/** The YAML from either body form; a missing body is a 400, decided after the 404s. */
export function pipelineSource(body: unknown): string {
  if (typeof body === 'string') return body;
  if (body && typeof body === 'object' && typeof (body as { source?: unknown }).source === 'string') {
    return (body as { source: string }).source;
  }
  throw new BadRequestError(
    'Send the pipeline YAML as the body (text/yaml) or as {"source": "…"} (application/json).',
    'body_required',
  );
}

export function parseOrThrow(source: string, options?: ParseOptions) {
  const result = parsePipeline(source, options);
  if (!result.ok) throw new InvalidPipelineError(result.errors);
  return result.definition;
}

type VersionRow = Pick<
  PipelineVersionRow,
  'id' | 'project_id' | 'version' | 'source' | 'definition' | 'created_by' | 'created_at'
>;

export function presentVersion(v: VersionRow) {
  return {
    id: v.id,
    project_id: v.project_id,
    version: v.version,
    source: v.source,
    definition: v.definition,
    created_by: v.created_by,
    created_at: iso(v.created_at),
  };
}

export function validatePipeline(source: string) {
  const definition = parseOrThrow(source);
  return { valid: true as const, steps: definition.steps.length, definition };
}

export async function putPipeline(deps: Pick<AppDeps, 'db' | 'bus'>, auth: AuthContext, projectId: string, body: unknown) {
  // The project first: another organization's project is a 404 whatever the body says.
  await getProject(deps, auth, projectId);
  const source = pipelineSource(body);
  const definition = parseOrThrow(source);
  const row = await transactionWithEffects(deps.db, async (tx, after) => {
    // Versions are numbered under the project's row lock (and it may have been deleted meanwhile).
    if (!(await lockLiveProject(tx, auth.orgId, projectId))) throw new NotFoundError('Project');
    const version = await insertPipelineVersion(tx, {
      orgId: auth.orgId,
      projectId,
      source,
      definition,
      createdBy: `${auth.actor.type}:${auth.actor.id}`,
    });
    await recordAudit(tx, auth, {
      action: 'pipeline.updated',
      resource: ['pipeline', version.id],
      projectId,
      after: { version: version.version, steps: definition.steps.map((s) => s.key), bytes: Buffer.byteLength(source) },
    });
    after.add(() =>
      publishOrgEvent(deps.bus, auth.orgId, 'pipeline.updated', {
        project_id: projectId,
        pipeline_version_id: version.id,
        version: version.version,
      }),
    );
    return version;
  });
  return presentVersion(row);
}

export async function getCurrentPipeline(deps: Pick<AppDeps, 'db'>, auth: AuthContext, projectId: string) {
  const row = await latestPipelineVersion(deps.db, auth.orgId, projectId);
  if (!row) throw new NotFoundError('Pipeline', 'no_pipeline');
  return presentVersion(row);
}

export async function getPipelineVersion(deps: Pick<AppDeps, 'db'>, auth: AuthContext, projectId: string, version: number) {
  const row = await findPipelineVersionByNumber(deps.db, auth.orgId, projectId, version);
  if (!row) throw new NotFoundError(`Pipeline version ${version}`);
  return presentVersion(row as VersionRow);
}

export async function listVersionsPage(
  deps: Pick<AppDeps, 'db'>,
  auth: AuthContext,
  projectId: string,
  q: { limit?: number; cursor?: string },
) {
  const limit = q.limit ?? 50;
  const cursor = q.cursor ? decodeCursor(q.cursor, 1) : undefined;
  if (cursor && !Number.isInteger(cursor[0])) decodeCursor('', 1); // the same 400 as any bad cursor
  const rows = await listPipelineVersions(deps.db, {
    orgId: auth.orgId,
    projectId,
    beforeVersion: cursor?.[0] as number | undefined,
    limit: limit + 1,
  });
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map((r) => ({ ...r, created_at: iso(r.created_at) })),
    next_cursor: rows.length > limit && last ? encodeCursor([last.version]) : null,
  };
}

/**
 * A running step adds steps to its own run (Buildkite's `pipeline upload`). The file may
 * name the run's existing steps in `needs`; steps that need nothing wait for the uploader.
 */
export async function uploadToRun(
  deps: AppDeps,
  auth: AuthContext,
  input: { runId: string; authorization: string | undefined; body: unknown },
) {
  const job = await jobOfToken(deps, auth, input.authorization);
  if (job.run_id !== input.runId || !job.step_key) throw new NotFoundError('Run');
  const source = pipelineSource(input.body);
  const existing = await stepsOfRun(deps.db, input.runId);
  const definition = parseOrThrow(source, {
    existingSteps: Object.fromEntries(existing.map((s) => [s.key, s.needs])),
    rootNeeds: [job.step_key],
  });
  if (existing.length + definition.steps.length > 2000) {
    throw new ConflictError('A run holds at most 2000 steps.', 'too_many_steps');
  }
  return appendSteps(deps, auth, input.runId, job.step_key, definition);
}
