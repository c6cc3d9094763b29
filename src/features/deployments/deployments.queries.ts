// Every SQL statement of deployments (environments: environments.queries.ts).
import type { Queryable } from '../../platform/db/index.js';
import type { ActorJson } from '../approvals/approvals.queries.js';

export type DeploymentState = 'pending' | 'awaiting_approval' | 'deploying' | 'succeeded' | 'failed' | 'canceled' | 'rejected';

export interface DeploymentRow {
  id: string;
  org_id: string;
  project_id: string;
  service: string;
  version: string;
  environment: string;
  state: DeploymentState;
  reason: string | null;
  run_id: string | null;
  step_key: string | null;
  artifact_id: string | null;
  job_id: string | null;
  approval_id: string | null;
  rollback_of: string | null;
  promoted_from: string | null;
  pool: string;
  tags: Record<string, string>;
  commands: string[];
  timeout_seconds: number | null;
  created_by: ActorJson;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

export async function insertDeployment(
  tx: Queryable,
  d: Omit<DeploymentRow, 'id' | 'reason' | 'job_id' | 'approval_id' | 'created_at' | 'started_at' | 'finished_at' | 'updated_at'>,
): Promise<DeploymentRow> {
  const { rows } = await tx.query<DeploymentRow>(
    `INSERT INTO deployments (org_id, project_id, service, version, environment, state, run_id, step_key, artifact_id,
                              rollback_of, promoted_from, pool, tags, commands, timeout_seconds, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING *`,
    [
      d.org_id,
      d.project_id,
      d.service,
      d.version,
      d.environment,
      d.state,
      d.run_id,
      d.step_key,
      d.artifact_id,
      d.rollback_of,
      d.promoted_from,
      d.pool,
      JSON.stringify(d.tags),
      JSON.stringify(d.commands),
      d.timeout_seconds,
      JSON.stringify(d.created_by),
    ],
  );
  return rows[0]!;
}

export async function findDeployment(
  db: Queryable,
  orgId: string,
  id: string,
  opts: { forUpdate?: boolean } = {},
): Promise<DeploymentRow | undefined> {
  const { rows } = await db.query<DeploymentRow>(
    `SELECT * FROM deployments WHERE org_id = $1 AND id = $2${opts.forUpdate ? ' FOR UPDATE' : ''}`,
    [orgId, id],
  );
  return rows[0];
}

export interface DeploymentPatch {
  state: DeploymentState;
  reason?: string | null;
  job_id?: string | null;
  approval_id?: string | null;
}

export async function updateDeployment(tx: Queryable, id: string, p: DeploymentPatch): Promise<DeploymentRow> {
  const { rows } = await tx.query<DeploymentRow>(
    `UPDATE deployments SET state = $2, reason = $3, job_id = coalesce($4, job_id), approval_id = coalesce($5, approval_id),
            started_at = CASE WHEN $2 = 'deploying' THEN coalesce(started_at, now()) ELSE started_at END,
            finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'canceled', 'rejected') THEN now() END,
            updated_at = now()
      WHERE id = $1 RETURNING *`,
    [id, p.state, p.reason ?? null, p.job_id ?? null, p.approval_id ?? null],
  );
  return rows[0]!;
}

/**
 * Serializes deployments of one service to one environment for the rest of the
 * transaction, then answers whether one is deploying now (only one deploys at a time).
 */
export async function lockTarget(
  tx: Queryable,
  d: Pick<DeploymentRow, 'project_id' | 'service' | 'environment'>,
): Promise<{ deploying: string | null }> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
    `cairn:deploy:${d.project_id}:${d.service}:${d.environment}`,
  ]);
  const { rows } = await tx.query<{ id: string }>(
    `SELECT id FROM deployments WHERE project_id = $1 AND service = $2 AND environment = $3 AND state = 'deploying' LIMIT 1`,
    [d.project_id, d.service, d.environment],
  );
  return { deploying: rows[0]?.id ?? null };
}

/** The oldest deployment of the target waiting for its turn, locked. */
export async function nextPending(
  tx: Queryable,
  d: Pick<DeploymentRow, 'project_id' | 'service' | 'environment'>,
): Promise<DeploymentRow | undefined> {
  const { rows } = await tx.query<DeploymentRow>(
    `SELECT * FROM deployments WHERE project_id = $1 AND service = $2 AND environment = $3 AND state = 'pending'
      ORDER BY created_at, id LIMIT 1 FOR UPDATE`,
    [d.project_id, d.service, d.environment],
  );
  return rows[0];
}

/** The state of a deployment's job wherever it lives (null when there is none). */
export async function jobStateOf(db: Queryable, jobId: string): Promise<string | null> {
  const { rows } = await db.query<{ state: string }>('SELECT state FROM all_jobs WHERE id = $1 LIMIT 1', [jobId]);
  return rows[0]?.state ?? null;
}

/**
 * Whether this version of the service ever succeeded in the environment — counting one whose
 * job completed but which is not settled yet, so a pipeline's next deploy step (started as
 * soon as the engine sees the job done) never races the settle.
 */
export async function hasSucceeded(
  db: Queryable,
  d: { projectId: string; service: string; version: string; environment: string },
): Promise<boolean> {
  const { rows } = await db.query(
    `SELECT 1 FROM deployments d WHERE project_id = $1 AND service = $2 AND version = $3 AND environment = $4
        AND (state = 'succeeded'
             OR (state = 'deploying' AND EXISTS (SELECT 1 FROM job_history h WHERE h.id = d.job_id AND h.state = 'completed')))
      LIMIT 1`,
    [d.projectId, d.service, d.version, d.environment],
  );
  return rows.length > 0;
}

/** The last succeeded deployment of the target that finished before `before`, of another version than `notVersion`. */
export async function lastSucceededBefore(
  db: Queryable,
  d: Pick<DeploymentRow, 'project_id' | 'service' | 'environment'>,
  before: Date,
  notVersion: string,
): Promise<DeploymentRow | undefined> {
  const { rows } = await db.query<DeploymentRow>(
    `SELECT * FROM deployments WHERE project_id = $1 AND service = $2 AND environment = $3 AND state = 'succeeded'
        AND finished_at < $4 AND version <> $5
      ORDER BY finished_at DESC, id DESC LIMIT 1`,
    [d.project_id, d.service, d.environment, before, notVersion],
  );
  return rows[0];
}

/** What runs now: the last succeeded deployment per service and environment of a project. */
export async function currentDeployments(
  db: Queryable,
  orgId: string,
  projectId: string,
  service: string | undefined,
): Promise<DeploymentRow[]> {
  const { rows } = await db.query<DeploymentRow>(
    `SELECT DISTINCT ON (service, environment) * FROM deployments
      WHERE org_id = $1 AND project_id = $2 AND state = 'succeeded' AND ($3::text IS NULL OR service = $3)
      ORDER BY service, environment, finished_at DESC, id DESC LIMIT 500`,
    [orgId, projectId, service ?? null],
  );
  return rows;
}

export interface DeploymentListFilter {
  orgId: string;
  projectId?: string;
  service?: string;
  environment?: string;
  states?: readonly string[];
  before?: { createdAt: string; id: string };
  limit: number;
}

export async function listDeployments(db: Queryable, f: DeploymentListFilter): Promise<DeploymentRow[]> {
  const { rows } = await db.query<DeploymentRow>(
    `SELECT * FROM deployments
      WHERE org_id = $1 AND ($2::uuid IS NULL OR project_id = $2) AND ($3::text IS NULL OR service = $3)
        AND ($4::text IS NULL OR environment = $4) AND ($5::text[] IS NULL OR state = ANY($5))
        AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7::uuid))
      ORDER BY created_at DESC, id DESC LIMIT $8`,
    [
      f.orgId,
      f.projectId ?? null,
      f.service ?? null,
      f.environment ?? null,
      f.states ?? null,
      f.before?.createdAt ?? null,
      f.before?.id ?? null,
      f.limit,
    ],
  );
  return rows;
}

/** Deployments still deploying whose job has ended (a jobs-ended notice was lost), oldest first. */
export async function deployingWithEndedJobs(db: Queryable, limit: number): Promise<{ id: string; org_id: string }[]> {
  const { rows } = await db.query<{ id: string; org_id: string }>(
    `SELECT d.id, d.org_id FROM deployments d
      WHERE d.state = 'deploying' AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = d.job_id)
      ORDER BY d.updated_at LIMIT $1`,
    [limit],
  );
  return rows;
}

/** Counts for the dashboard: by state, and succeeded staging versions not yet in production. */
export async function deploymentCounts(
  db: Queryable,
  orgId: string,
): Promise<{ by_state: Record<string, number>; awaiting_promotion: number }> {
  const { rows } = await db.query<{ state: string; n: number }>(
    'SELECT state, count(*)::int AS n FROM deployments WHERE org_id = $1 GROUP BY state',
    [orgId],
  );
  const staged = await db.query<{ n: number }>(
    `SELECT count(DISTINCT (s.project_id, s.service, s.version))::int AS n FROM deployments s
      WHERE s.org_id = $1 AND s.environment = 'staging' AND s.state = 'succeeded'
        AND NOT EXISTS (SELECT 1 FROM deployments p WHERE p.project_id = s.project_id AND p.service = s.service
                          AND p.version = s.version AND p.environment = 'production' AND p.state = 'succeeded')`,
    [orgId],
  );
  return { by_state: Object.fromEntries(rows.map((r) => [r.state, r.n])), awaiting_promotion: staged.rows[0]!.n };
}

/** Unfinished deployments of every organization, by state and environment (for /metrics). */
export async function unfinishedDeploymentCounts(
  db: Queryable,
  states: readonly string[],
): Promise<{ state: string; environment: string; n: number }[]> {
  const { rows } = await db.query<{ state: string; environment: string; n: number }>(
    `SELECT state, environment, count(*)::int AS n FROM deployments
      WHERE state = ANY($1::text[]) GROUP BY state, environment`,
    [states],
  );
  return rows;
}
