// Starting runs and what people do to them: trigger, cancel, retry a step, re-run, force
// complete. Every change ends by asking the engine to advance the run.
import type { AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects, type AfterCommit } from '../../platform/effects.js';
import { BadRequestError, ConflictError, NotFoundError } from '../../platform/errors.js';
import { decodeCursor, encodeCursor, iso } from '../../platform/http/schemas.js';
import { recordAudit } from '../audit/audit.record.js';
import { compileCondition, ConditionError } from '../pipelines/conditions.js';
import type { PipelineDefinition, RunContext } from '../pipelines/pipeline.model.js';
import { cancelJobInTransaction } from '../queue/jobs.service.js';
import { FINAL_RUN_STATES, advanceRun, publishRunChanges, runStateOf } from './runs.engine.js';
import {
  activeRunIdsOfProject,
  findPipelineVersion,
  findRun,
  listRuns,
  projectActivity,
  insertRun,
  insertSteps,
  latestPipelineVersion,
  lockRun,
  setRunState,
  stepsOfRun,
  takeRunNumber,
  updateSteps,
  type NewStep,
  type RunRow,
  type StepRow,
} from './runs.queries.js';
import { presentRun, presentRunSummary } from './runs.views.js';

export interface TriggerInput {
  branch?: string | null;
  commit?: string | null;
  message?: string | null;
  env?: Record<string, string>;
  /** api (default), cli, schedule, webhook */
  trigger?: string;
  event?: string | null;
}

/** The steps a run starts with: conditions decided now, the pipeline's env merged into each command step. */
export function initialSteps(definition: PipelineDefinition, context: RunContext): NewStep[] {
  return definition.steps.map((step, position) => {
    let skip = false;
    let reason: string | null = null;
    if (step.if) {
      try {
        skip = !compileCondition(step.if)(context);
        if (skip) reason = 'condition';
      } catch (error) {
        if (!(error instanceof ConditionError)) throw error;
        throw new BadRequestError(`Step "${step.key}": its condition is not valid: ${error.message}`, 'invalid_condition');
      }
    }
    const stored = step.type === 'command' ? { ...step, env: { ...definition.env, ...step.env } } : step;
    return {
      key: step.key,
      position,
      type: step.type,
      definition: stored,
      needs: step.needs,
      state: skip ? 'skipped' : 'waiting',
      reason,
      concurrency_group: step.type === 'command' ? (step.concurrency_group ?? null) : null,
      concurrency_limit: step.type === 'command' && step.concurrency_group ? (step.concurrency ?? 1) : null,
    };
  });
}

export async function createRun(
  deps: AppDeps,
  auth: AuthContext,
  input: {
    projectId: string;
    pipelineVersionId: string | null;
    definition: PipelineDefinition;
    trigger: TriggerInput;
    rerunOf?: string;
  },
): Promise<RunRow> {
  const context: RunContext = {
    branch: input.trigger.branch ?? null,
    commit: input.trigger.commit ?? null,
    message: input.trigger.message ?? null,
    trigger: input.trigger.trigger ?? 'api',
    event: input.trigger.event ?? null,
  };
  const steps = initialSteps(input.definition, context);
  const run = await deps.db.transaction(async (tx) => {
    const number = await takeRunNumber(tx, auth.orgId, input.projectId);
    if (number === undefined) throw new NotFoundError('Project');
    const row = await insertRun(tx, {
      org_id: auth.orgId,
      project_id: input.projectId,
      number,
      pipeline_version_id: input.pipelineVersionId,
      trigger: context.trigger,
      branch: context.branch,
      commit: context.commit,
      message: context.message,
      event: context.event,
      env: input.trigger.env ?? {},
      created_by: `${auth.actor.type}:${auth.actor.id}`,
      rerun_of: input.rerunOf ?? null,
    });
    await insertSteps(tx, row, steps);
    await recordAudit(tx, auth, {
      action: 'run.created',
      resource: ['run', row.id],
      projectId: row.project_id,
      after: { number, trigger: context, pipeline_version_id: input.pipelineVersionId, env_keys: Object.keys(row.env).sort() },
    });
    return row;
  });
  publishOrgEvent(deps.bus, run.org_id, 'run.created', {
    run_id: run.id,
    project_id: run.project_id,
    number: run.number,
    state: run.state,
  });
  return (await advanceRun(deps, run.id)).run ?? run;
}

/** A run of the project's current pipeline. */
export async function triggerRun(deps: AppDeps, auth: AuthContext, projectId: string, trigger: TriggerInput) {
  const version = await latestPipelineVersion(deps.db, auth.orgId, projectId);
  if (!version) {
    throw new ConflictError(
      'This project has no pipeline yet; upload one with PUT /api/v1/projects/{id}/pipeline.',
      'no_pipeline',
    );
  }
  const run = await createRun(deps, auth, { projectId, pipelineVersionId: version.id, definition: version.definition, trigger });
  return getRun(deps, auth, run.id);
}

export async function getRun(deps: Pick<AppDeps, 'db'>, auth: AuthContext, id: string) {
  const run = await findRun(deps.db, auth.orgId, id);
  if (!run) throw new NotFoundError('Run');
  return presentRun(run, await stepsOfRun(deps.db, id));
}

async function requireRun(deps: Pick<AppDeps, 'db'>, auth: AuthContext, id: string): Promise<RunRow> {
  const run = await findRun(deps.db, auth.orgId, id);
  if (!run) throw new NotFoundError('Run');
  return run;
}

/** Stops a run's unfinished steps (their jobs canceled, approvals and deployments told). */
async function stopSteps(
  deps: AppDeps,
  tx: Queryable,
  after: AfterCommit,
  auth: AuthContext,
  steps: StepRow[],
  to: { state: 'canceled' | 'skipped'; reason: string },
): Promise<StepRow[]> {
  const stopped: StepRow[] = [];
  for (const step of steps) {
    if (!['waiting', 'running', 'blocked'].includes(step.state)) continue;
    if (step.state !== 'waiting') {
      if (step.type === 'command' && step.job_id) await cancelJobInTransaction(deps, tx, after, auth, step.job_id);
      else if (step.type !== 'command') await deps.runs.drivers[step.type]?.cancel({ deps, tx, after, auth, step });
    }
    stopped.push({ ...step, ...to });
  }
  if (stopped.length > 0) {
    await updateSteps(
      tx,
      stopped[0]!.run_id,
      stopped.map((s) => ({ ...s, started: false, finished: true })),
    );
  }
  return stopped;
}

export async function cancelRun(deps: AppDeps, auth: AuthContext, id: string) {
  await requireRun(deps, auth, id);
  await transactionWithEffects(deps.db, async (tx, after) => {
    const run = (await lockRun(tx, id))!;
    if (FINAL_RUN_STATES.includes(run.state)) throw new ConflictError(`The run already finished (${run.state}).`, 'run_finished');
    const stopped = await stopSteps(deps, tx, after, auth, await stepsOfRun(tx, id), {
      state: 'canceled',
      reason: 'run_canceled',
    });
    const row = await setRunState(tx, id, 'canceled');
    await recordAudit(tx, auth, { action: 'run.canceled', resource: ['run', id], projectId: run.project_id });
    after.add(() => publishRunChanges(deps, row, stopped, run.state));
  });
  return getRun(deps, auth, id);
}

/** Admins: finish the run now — unfinished steps are skipped ("forced"), the outcome is what ran. */
export async function forceCompleteRun(deps: AppDeps, auth: AuthContext, id: string) {
  await requireRun(deps, auth, id);
  await transactionWithEffects(deps.db, async (tx, after) => {
    const run = (await lockRun(tx, id))!;
    if (FINAL_RUN_STATES.includes(run.state)) throw new ConflictError(`The run already finished (${run.state}).`, 'run_finished');
    const steps = await stepsOfRun(tx, id);
    const stopped = await stopSteps(deps, tx, after, auth, steps, { state: 'skipped', reason: 'forced' });
    const byKey = new Map(steps.map((s) => [s.key, s]));
    stopped.forEach((s) => byKey.set(s.key, s));
    const state = runStateOf(byKey.values());
    const row = await setRunState(tx, id, state, auth.actor.label);
    await recordAudit(tx, auth, {
      action: 'run.force_completed',
      resource: ['run', id],
      projectId: run.project_id,
      details: { from: run.state, to: state, skipped_steps: stopped.map((s) => s.key) },
    });
    after.add(() => publishRunChanges(deps, row, stopped, run.state));
  });
  return getRun(deps, auth, id);
}

/** Runs a failed or canceled step again (a new job, approval or deployment); reopens the run. */
export async function retryStep(deps: AppDeps, auth: AuthContext, id: string, key: string) {
  await requireRun(deps, auth, id);
  await transactionWithEffects(deps.db, async (tx, after) => {
    const run = (await lockRun(tx, id))!;
    const steps = await stepsOfRun(tx, id);
    const step = steps.find((s) => s.key === key);
    if (!step) throw new NotFoundError(`Step "${key}"`);
    if (step.state !== 'failed' && step.state !== 'canceled') {
      throw new ConflictError(`Only a failed or canceled step can be retried; "${key}" is ${step.state}.`, 'step_not_retryable');
    }
    // The step waits again, and so does everything skipped because it failed.
    const reopened = new Set([key]);
    for (let grew = true; grew;) {
      grew = false;
      for (const s of steps) {
        if (!reopened.has(s.key) && s.state === 'skipped' && s.reason === 'dependency' && s.needs.some((n) => reopened.has(n))) {
          reopened.add(s.key);
          grew = true;
        }
      }
    }
    const rows = steps.filter((s) => reopened.has(s.key)).map((s) => ({ ...s, state: 'waiting' as const, reason: null }));
    await updateSteps(
      tx,
      id,
      rows.map((s) => ({ ...s, started: false, finished: false })),
    );
    const row = run.state === 'running' ? run : await setRunState(tx, id, 'running');
    await recordAudit(tx, auth, {
      action: 'run.step_retried',
      resource: ['run', id],
      projectId: run.project_id,
      details: { step: key },
    });
    after.add(() => publishRunChanges(deps, row, rows, run.state));
  });
  await advanceRun(deps, id);
  return getRun(deps, auth, id);
}

/** A new run of the same pipeline version with the same context. */
export async function rerun(deps: AppDeps, auth: AuthContext, id: string) {
  const run = await requireRun(deps, auth, id);
  const version = run.pipeline_version_id ? await findPipelineVersion(deps.db, auth.orgId, run.pipeline_version_id) : undefined;
  if (!version) throw new ConflictError('The pipeline version of this run is gone.', 'no_pipeline');
  const next = await createRun(deps, auth, {
    projectId: run.project_id,
    pipelineVersionId: version.id,
    definition: version.definition,
    trigger: { branch: run.branch, commit: run.commit, message: run.message, env: run.env, trigger: 'rerun', event: run.event },
    rerunOf: run.id,
  });
  return getRun(deps, auth, next.id);
}

export interface RunListQuery {
  project_id?: string;
  state?: string | string[];
  branch?: string;
  limit?: number;
  cursor?: string;
}

export async function listRunsPage(deps: Pick<AppDeps, 'db'>, auth: AuthContext, q: RunListQuery) {
  const limit = q.limit ?? 50;
  const cursor = q.cursor ? decodeCursor(q.cursor, 2) : undefined;
  const rows = await listRuns(deps.db, {
    orgId: auth.orgId,
    projectId: q.project_id,
    states: q.state === undefined ? undefined : [q.state].flat(),
    branch: q.branch,
    before: cursor ? { createdAt: String(cursor[0]), id: String(cursor[1]) } : undefined,
    limit: limit + 1,
  });
  const page = rows.slice(0, limit).map(presentRunSummary);
  const last = page.at(-1);
  return { items: page, next_cursor: rows.length > limit && last ? encodeCursor([last.created_at, last.id]) : null };
}

/** Seed 003's project completion: complete when no run of the project is still going. */
export async function projectCompletion(deps: Pick<AppDeps, 'db'>, auth: AuthContext, projectId: string) {
  const activity = await projectActivity(deps.db, auth.orgId, projectId);
  return { complete: activity.active_runs === 0, ...activity, last_run_at: iso(activity.last_run_at) };
}

/** Admins: force every unfinished run of the project complete. */
export async function forceCompleteProject(deps: AppDeps, auth: AuthContext, projectId: string) {
  for (const runId of await activeRunIdsOfProject(deps.db, auth.orgId, projectId)) {
    try {
      await forceCompleteRun(deps, auth, runId);
    } catch (error) {
      // A run that finished meanwhile is fine; anything else is not.
      if (!(error instanceof ConflictError)) throw error;
    }
  }
  return projectCompletion(deps, auth, projectId);
}

/**
 * Dynamic pipelines: a running step uploads more steps into its own run (Buildkite's
 * `pipeline upload`). New steps without `needs` wait for the uploading step; their keys
 * must be new to the run; conditions are decided against the run's context now.
 */
export async function appendSteps(
  deps: AppDeps,
  auth: AuthContext,
  runId: string,
  fromStep: string,
  definition: PipelineDefinition,
) {
  await requireRun(deps, auth, runId);
  await deps.db.transaction(async (tx) => {
    const run = (await lockRun(tx, runId))!;
    if (FINAL_RUN_STATES.includes(run.state)) throw new ConflictError(`The run already finished (${run.state}).`, 'run_finished');
    const existing = await stepsOfRun(tx, runId);
    const taken = new Set(existing.map((s) => s.key));
    const clashes = definition.steps.filter((s) => taken.has(s.key)).map((s) => s.key);
    if (clashes.length > 0) {
      throw new ConflictError(`The run already has steps named ${clashes.join(', ')}.`, 'step_keys_taken', { keys: clashes });
    }
    const known = new Set([...taken, ...definition.steps.map((s) => s.key)]);
    const unknown = definition.steps.flatMap((s) => s.needs.filter((n) => !known.has(n)));
    if (unknown.length > 0)
      throw new BadRequestError(`Unknown steps in needs: ${[...new Set(unknown)].join(', ')}.`, 'unknown_needs');
    const context: RunContext = {
      branch: run.branch,
      commit: run.commit,
      message: run.message,
      trigger: run.trigger,
      event: run.event,
    };
    const withNeeds = { ...definition, steps: definition.steps.map((s) => (s.needs.length ? s : { ...s, needs: [fromStep] })) };
    const offset = existing.length;
    const steps = initialSteps(withNeeds, context).map((s) => ({ ...s, position: s.position + offset }));
    await insertSteps(tx, run, steps);
    await recordAudit(tx, auth, {
      action: 'run.steps_added',
      resource: ['run', runId],
      projectId: run.project_id,
      details: { by_step: fromStep, steps: steps.map((s) => s.key) },
    });
  });
  await advanceRun(deps, runId);
  return getRun(deps, auth, runId);
}
