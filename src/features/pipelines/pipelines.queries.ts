// SQL of pipelines: a project's versions (inserted by runs.queries.ts's
// insertPipelineVersion) and the job behind a job token.
import type { Queryable } from '../../platform/db/index.js';

/** Locks a live project's row until the commit, so its versions are numbered one at a time. */
export async function lockLiveProject(tx: Queryable, orgId: string, projectId: string): Promise<boolean> {
  const { rows } = await tx.query<{ id: string }>(
    'SELECT id FROM projects WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE',
    [orgId, projectId],
  );
  return rows.length > 0;
}

export interface PipelineVersionSummaryRow {
  id: string;
  version: number;
  steps: number;
  created_by: string;
  created_at: Date;
}

/** A project's versions, newest first, in keyset pages by version number. */
export async function listPipelineVersions(
  db: Queryable,
  f: { orgId: string; projectId: string; beforeVersion?: number; limit: number },
): Promise<PipelineVersionSummaryRow[]> {
  const { rows } = await db.query<PipelineVersionSummaryRow>(
    `SELECT id, version, jsonb_array_length(definition -> 'steps')::int AS steps, created_by, created_at
       FROM pipeline_versions
      WHERE org_id = $1 AND project_id = $2 AND ($3::int IS NULL OR version < $3)
      ORDER BY version DESC LIMIT $4`,
    [f.orgId, f.projectId, f.beforeVersion ?? null, f.limit],
  );
  return rows;
}

export async function findPipelineVersionByNumber(db: Queryable, orgId: string, projectId: string, version: number) {
  const { rows } = await db.query<{
    id: string;
    project_id: string;
    version: number;
    source: string;
    definition: unknown;
    created_by: string;
    created_at: Date;
  }>('SELECT * FROM pipeline_versions WHERE org_id = $1 AND project_id = $2 AND version = $3', [orgId, projectId, version]);
  return rows[0];
}

/** A live job as its own token sees it: which run and step it is, and its current lease. */
export interface LiveJobRow {
  id: string;
  org_id: string;
  project_id: string | null;
  run_id: string | null;
  step_key: string | null;
  agent_id: string | null;
  lease_token: string | null;
  attempt: number;
  state: string;
}

export async function findLiveJob(db: Queryable, orgId: string, jobId: string): Promise<LiveJobRow | undefined> {
  const { rows } = await db.query<LiveJobRow>(
    `SELECT id, org_id, project_id, run_id, step_key, agent_id, lease_token, attempt, state
       FROM jobs WHERE org_id = $1 AND id = $2`,
    [orgId, jobId],
  );
  return rows[0];
}

/** How many outputs a step has published, not counting `exceptKey` (which a write would replace). */
export async function countStepOutputs(db: Queryable, runId: string, stepKey: string, exceptKey: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM run_outputs WHERE run_id = $1 AND step_key = $2 AND key <> $3',
    [runId, stepKey, exceptKey],
  );
  return rows[0]!.n;
}
