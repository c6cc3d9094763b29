// Reads of jobs wherever they live (the live queue or the history): by id, and listed
// with filters in keyset pages.
import type { Queryable } from '../../platform/db/index.js';
import { WITH_POOL_NAME } from './queue.columns.js';
import type { JobRow } from './queue.model.js';

export async function findJob(db: Queryable, orgId: string, id: string): Promise<JobRow | undefined> {
  const { rows } = await db.query<JobRow>(`SELECT j.*, ${WITH_POOL_NAME} FROM all_jobs j WHERE j.org_id = $1 AND j.id = $2`, [
    orgId,
    id,
  ]);
  return rows[0];
}

export async function findJobs(db: Queryable, orgId: string, ids: readonly string[]): Promise<JobRow[]> {
  const { rows } = await db.query<JobRow>(
    `SELECT j.*, ${WITH_POOL_NAME} FROM all_jobs j WHERE j.org_id = $1 AND j.id = ANY($2::uuid[])`,
    [orgId, ids],
  );
  return rows;
}

/** Did this agent ever hold the job? (Its stale reports are 409s; others' are 404s.) */
export async function agentHeldJob(db: Queryable, agentId: string, jobId: string): Promise<boolean> {
  const { rows } = await db.query<{ held: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $2 AND agent_id = $1)
         OR EXISTS (SELECT 1 FROM job_history WHERE id = $2 AND agent_id = $1)
         OR EXISTS (SELECT 1 FROM job_attempts WHERE job_id = $2 AND agent_id = $1) AS held`,
    [agentId, jobId],
  );
  return rows[0]?.held === true;
}

export interface JobListFilter {
  orgId: string;
  states?: readonly string[];
  poolId?: string;
  projectId?: string;
  runId?: string;
  agentId?: string;
  priority?: number;
  before?: { createdAt: string; id: string };
  limit: number;
}

export async function listJobs(db: Queryable, f: JobListFilter): Promise<JobRow[]> {
  const { rows } = await db.query<JobRow>(
    `SELECT j.*, ${WITH_POOL_NAME} FROM all_jobs j
      WHERE j.org_id = $1
        AND ($2::text[] IS NULL OR j.state = ANY($2))
        AND ($3::uuid IS NULL OR j.pool_id = $3)
        AND ($4::uuid IS NULL OR j.project_id = $4)
        AND ($5::uuid IS NULL OR j.run_id = $5)
        AND ($6::uuid IS NULL OR j.agent_id = $6)
        AND ($7::smallint IS NULL OR j.priority = $7)
        AND ($8::timestamptz IS NULL OR (j.created_at, j.id) < ($8, $9::uuid))
      ORDER BY j.created_at DESC, j.id DESC LIMIT $10`,
    [
      f.orgId,
      f.states ?? null,
      f.poolId ?? null,
      f.projectId ?? null,
      f.runId ?? null,
      f.agentId ?? null,
      f.priority ?? null,
      f.before?.createdAt ?? null,
      f.before?.id ?? null,
      f.limit,
    ],
  );
  return rows;
}

export async function findPoolIdsByName(db: Queryable, orgId: string, names: readonly string[]): Promise<Map<string, string>> {
  const { rows } = await db.query<{ id: string; name: string }>(
    'SELECT id, name FROM pools WHERE org_id = $1 AND name = ANY($2::text[]) AND deleted_at IS NULL',
    [orgId, names],
  );
  return new Map(rows.map((r) => [r.name, r.id]));
}

export async function existingProjectIds(db: Queryable, orgId: string, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const { rows } = await db.query<{ id: string }>(
    'SELECT id FROM projects WHERE org_id = $1 AND id = ANY($2::uuid[]) AND deleted_at IS NULL',
    [orgId, ids],
  );
  return new Set(rows.map((r) => r.id));
}

/** What a job token is checked against: the live job's current lease and who holds it. */
export async function findLiveJobLease(
  db: Queryable,
  id: string,
): Promise<{ org_id: string; lease_token: string | null; agent_id: string | null; pool_id: string; state: string } | undefined> {
  const { rows } = await db.query<{
    org_id: string;
    lease_token: string | null;
    agent_id: string | null;
    pool_id: string;
    state: string;
  }>('SELECT org_id, lease_token, agent_id, pool_id, state FROM jobs WHERE id = $1', [id]);
  return rows[0];
}
