// The SQL of runs: pipeline versions, runs, their steps and outputs. What only the engine
// and its runtime run (locking runs to advance, saving advances, slots, the sweeper) is in
// runs.advance.queries.ts.
import type { Queryable } from '../../platform/db/index.js';
import type { PipelineDefinition, StepDefinition } from '../pipelines/pipeline.model.js';

export type RunState = 'running' | 'blocked' | 'passed' | 'failed' | 'canceled';
export type StepState = 'waiting' | 'running' | 'blocked' | 'passed' | 'failed' | 'canceled' | 'skipped';

export interface PipelineVersionRow {
  id: string;
  org_id: string;
  project_id: string;
  version: number;
  source: string;
  definition: PipelineDefinition;
  created_by: string;
  created_at: Date;
}

export interface RunRow {
  id: string;
  org_id: string;
  project_id: string;
  number: number;
  pipeline_version_id: string | null;
  state: RunState;
  trigger: string;
  branch: string | null;
  commit: string | null;
  message: string | null;
  event: string | null;
  env: Record<string, string>;
  created_by: string;
  rerun_of: string | null;
  created_at: Date;
  finished_at: Date | null;
  forced_by: string | null;
  updated_at: Date;
}

export interface StepRow {
  run_id: string;
  key: string;
  org_id: string;
  position: number;
  type: StepDefinition['type'];
  definition: StepDefinition;
  needs: string[];
  state: StepState;
  reason: string | null;
  job_id: string | null;
  approval_id: string | null;
  deployment_id: string | null;
  concurrency_group: string | null;
  concurrency_limit: number | null;
  jobs_started: number;
  started_at: Date | null;
  finished_at: Date | null;
  /** The state of the step's current job, wherever it lives (null without a job). */
  job_state: string | null;
}

export async function insertPipelineVersion(
  db: Queryable,
  v: { orgId: string; projectId: string; source: string; definition: PipelineDefinition; createdBy: string },
): Promise<PipelineVersionRow> {
  const { rows } = await db.query<PipelineVersionRow>(
    `INSERT INTO pipeline_versions (org_id, project_id, version, source, definition, created_by)
     SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5 FROM pipeline_versions WHERE project_id = $2
     RETURNING *`,
    [v.orgId, v.projectId, v.source, JSON.stringify(v.definition), v.createdBy],
  );
  return rows[0]!;
}

export async function latestPipelineVersion(
  db: Queryable,
  orgId: string,
  projectId: string,
): Promise<PipelineVersionRow | undefined> {
  const { rows } = await db.query<PipelineVersionRow>(
    'SELECT * FROM pipeline_versions WHERE org_id = $1 AND project_id = $2 ORDER BY version DESC LIMIT 1',
    [orgId, projectId],
  );
  return rows[0];
}

export async function findPipelineVersion(db: Queryable, orgId: string, id: string): Promise<PipelineVersionRow | undefined> {
  const { rows } = await db.query<PipelineVersionRow>('SELECT * FROM pipeline_versions WHERE org_id = $1 AND id = $2', [
    orgId,
    id,
  ]);
  return rows[0];
}

/** The next run number of a live project (locks the project row until the commit). */
export async function takeRunNumber(tx: Queryable, orgId: string, projectId: string): Promise<number | undefined> {
  const { rows } = await tx.query<{ n: number }>(
    `UPDATE projects SET runs_started = runs_started + 1
      WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING runs_started AS n`,
    [orgId, projectId],
  );
  return rows[0]?.n;
}

export async function insertRun(
  tx: Queryable,
  r: Omit<RunRow, 'id' | 'state' | 'created_at' | 'finished_at' | 'forced_by' | 'updated_at'>,
): Promise<RunRow> {
  const { rows } = await tx.query<RunRow>(
    `INSERT INTO runs (org_id, project_id, number, pipeline_version_id, state, trigger, branch, commit, message, event,
                       env, created_by, rerun_of)
     VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *`,
    [
      r.org_id,
      r.project_id,
      r.number,
      r.pipeline_version_id,
      r.trigger,
      r.branch,
      r.commit,
      r.message,
      r.event,
      JSON.stringify(r.env),
      r.created_by,
      r.rerun_of,
    ],
  );
  return rows[0]!;
}

export interface NewStep {
  key: string;
  position: number;
  type: StepDefinition['type'];
  definition: StepDefinition;
  needs: string[];
  state: StepState;
  reason: string | null;
  concurrency_group: string | null;
  concurrency_limit: number | null;
}

export async function insertSteps(tx: Queryable, run: { id: string; org_id: string }, steps: readonly NewStep[]): Promise<void> {
  await tx.query(
    `INSERT INTO run_steps (run_id, org_id, key, position, type, definition, needs, state, reason, concurrency_group,
                            concurrency_limit, finished_at)
     SELECT $1, $2, key, position, type, definition, needs, state, reason, concurrency_group, concurrency_limit,
            CASE WHEN state = 'skipped' THEN now() END
       FROM jsonb_to_recordset($3::jsonb) AS x(key text, position int, type text, definition jsonb, needs text[],
            state text, reason text, concurrency_group text, concurrency_limit int)`,
    [run.id, run.org_id, JSON.stringify(steps)],
  );
}

export async function lockRun(tx: Queryable, runId: string): Promise<RunRow | undefined> {
  const { rows } = await tx.query<RunRow>('SELECT * FROM runs WHERE id = $1 FOR UPDATE', [runId]);
  return rows[0];
}

export async function findRun(db: Queryable, orgId: string, runId: string): Promise<RunRow | undefined> {
  const { rows } = await db.query<RunRow>('SELECT * FROM runs WHERE org_id = $1 AND id = $2', [orgId, runId]);
  return rows[0];
}

/** The steps of several runs (with their jobs' states), by run, each in position order. */
export async function stepsOfRuns(db: Queryable, runIds: readonly string[]): Promise<Map<string, StepRow[]>> {
  const { rows } = await db.query<StepRow>(
    `SELECT s.*, (SELECT j.state FROM all_jobs j WHERE j.id = s.job_id LIMIT 1) AS job_state
       FROM run_steps s WHERE s.run_id = ANY($1::uuid[]) ORDER BY s.run_id, s.position`,
    [runIds],
  );
  const byRun = new Map<string, StepRow[]>(runIds.map((id) => [id, []]));
  for (const row of rows) byRun.get(row.run_id)!.push(row);
  return byRun;
}

export async function stepsOfRun(db: Queryable, runId: string): Promise<StepRow[]> {
  return (await stepsOfRuns(db, [runId])).get(runId)!;
}

export interface StepChange {
  key: string;
  state: StepState;
  reason: string | null;
  job_id: string | null;
  approval_id: string | null;
  deployment_id: string | null;
  jobs_started: number;
  started: boolean;
  finished: boolean;
}

/** The columns of a `StepChange` recordset (`jsonb_to_recordset(...) AS c(...)`). */
export const STEP_CHANGE_COLUMNS = `key text, state text, reason text, job_id uuid, approval_id uuid, deployment_id uuid,
       jobs_started int, started boolean, finished boolean`;

/** The SET list applying a change `c` to its step `s`. */
export const APPLY_STEP_CHANGE = `state = c.state, reason = c.reason, job_id = c.job_id, approval_id = c.approval_id,
       deployment_id = c.deployment_id, jobs_started = c.jobs_started,
       started_at = CASE WHEN c.started THEN coalesce(s.started_at, now()) ELSE s.started_at END,
       finished_at = CASE WHEN c.finished THEN now() ELSE NULL END`;

export async function updateSteps(tx: Queryable, runId: string, changes: readonly StepChange[]): Promise<void> {
  if (changes.length === 0) return;
  await tx.query(
    `UPDATE run_steps s SET ${APPLY_STEP_CHANGE}
       FROM jsonb_to_recordset($2::jsonb) AS c(${STEP_CHANGE_COLUMNS})
      WHERE s.run_id = $1 AND s.key = c.key`,
    [runId, JSON.stringify(changes)],
  );
}

export async function setRunState(tx: Queryable, runId: string, state: RunState, forcedBy?: string): Promise<RunRow> {
  const { rows } = await tx.query<RunRow>(
    `UPDATE runs SET state = $2, updated_at = now(),
            finished_at = CASE WHEN $2 IN ('passed', 'failed', 'canceled') THEN coalesce(finished_at, now()) ELSE NULL END,
            forced_by = coalesce($3, forced_by)
      WHERE id = $1 RETURNING *`,
    [runId, state, forcedBy ?? null],
  );
  return rows[0]!;
}

/** A step's hand-off value (the run's context store). */
export interface RunOutput {
  step_key: string;
  key: string;
  value: string;
}

/** The hand-off outputs of several runs, by run. */
export async function outputsOfRuns(db: Queryable, runIds: readonly string[]): Promise<Map<string, RunOutput[]>> {
  const { rows } = await db.query<RunOutput & { run_id: string }>(
    'SELECT run_id, step_key, key, value FROM run_outputs WHERE run_id = ANY($1::uuid[]) ORDER BY run_id, step_key, key',
    [runIds],
  );
  const byRun = new Map<string, RunOutput[]>();
  for (const { run_id, ...output } of rows) {
    let list = byRun.get(run_id);
    if (!list) byRun.set(run_id, (list = []));
    list.push(output);
  }
  return byRun;
}

export async function outputsOfRun(db: Queryable, runId: string): Promise<RunOutput[]> {
  return (await outputsOfRuns(db, [runId])).get(runId) ?? [];
}

export interface RunListFilter {
  orgId: string;
  projectId?: string;
  states?: readonly string[];
  branch?: string;
  before?: { createdAt: string; id: string };
  limit: number;
}

export async function listRuns(db: Queryable, f: RunListFilter): Promise<RunRow[]> {
  const { rows } = await db.query<RunRow>(
    `SELECT * FROM runs
      WHERE org_id = $1 AND ($2::uuid IS NULL OR project_id = $2) AND ($3::text[] IS NULL OR state = ANY($3))
        AND ($4::text IS NULL OR branch = $4)
        AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid))
      ORDER BY created_at DESC, id DESC LIMIT $7`,
    [
      f.orgId,
      f.projectId ?? null,
      f.states ?? null,
      f.branch ?? null,
      f.before?.createdAt ?? null,
      f.before?.id ?? null,
      f.limit,
    ],
  );
  return rows;
}

/** A project's runs and jobs, for its status; `active` = running or blocked runs. */
export async function projectActivity(
  db: Queryable,
  orgId: string,
  projectId: string,
): Promise<{
  runs: number;
  active_runs: number;
  jobs: number;
  live_jobs: number;
  steps_remaining: number;
  last_run_at: Date | null;
}> {
  const { rows } = await db.query<{
    runs: number;
    active_runs: number;
    jobs: number;
    live_jobs: number;
    steps_remaining: number;
    last_run_at: Date | null;
  }>(
    `SELECT (SELECT count(*)::int FROM runs WHERE org_id = $1 AND project_id = $2) AS runs,
            (SELECT count(*)::int FROM runs WHERE org_id = $1 AND project_id = $2 AND state IN ('running', 'blocked')) AS active_runs,
            (SELECT count(*)::int FROM all_jobs WHERE org_id = $1 AND project_id = $2) AS jobs,
            (SELECT count(*)::int FROM jobs WHERE org_id = $1 AND project_id = $2) AS live_jobs,
            (SELECT count(*)::int FROM run_steps s JOIN runs r ON r.id = s.run_id
              WHERE r.org_id = $1 AND r.project_id = $2 AND s.state IN ('waiting', 'running', 'blocked')) AS steps_remaining,
            (SELECT max(created_at) FROM runs WHERE org_id = $1 AND project_id = $2) AS last_run_at`,
    [orgId, projectId],
  );
  return rows[0]!;
}

export async function activeRunIdsOfProject(db: Queryable, orgId: string, projectId: string): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    "SELECT id FROM runs WHERE org_id = $1 AND project_id = $2 AND state IN ('running', 'blocked') ORDER BY created_at",
    [orgId, projectId],
  );
  return rows.map((r) => r.id);
}

/** A step's hand-off outputs (an approval's answer, for one); a key given again replaces its value. */
export async function insertRunOutputs(
  tx: Queryable,
  o: { orgId: string; runId: string; stepKey: string; values: Record<string, string>; jobId?: string | null },
): Promise<void> {
  const entries = Object.entries(o.values);
  if (entries.length === 0) return;
  await tx.query(
    `INSERT INTO run_outputs (run_id, step_key, key, org_id, value, job_id)
     SELECT $1, $2, x.key, $3, x.value, $4 FROM jsonb_to_recordset($5::jsonb) AS x(key text, value text)
     ON CONFLICT (run_id, step_key, key) DO UPDATE SET value = excluded.value, job_id = excluded.job_id, created_at = now()`,
    [o.runId, o.stepKey, o.orgId, o.jobId ?? null, JSON.stringify(entries.map(([key, value]) => ({ key, value })))],
  );
}
