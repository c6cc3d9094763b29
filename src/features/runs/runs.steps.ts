// Starting a command step: its job (built here, inserted by the engine with the other
// runs' jobs of its transaction), once its concurrency group has room. The job's
// environment is the step's (pipeline env merged in at run creation), the run's overrides,
// the run's context as CAIRN_* variables, and every output earlier steps handed on as
// CAIRN_OUTPUT_<STEP>_<NAME>.
import type { AuthContext } from '../../platform/auth.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import type { CommandStep } from '../pipelines/pipeline.model.js';
import type { TemplateScope } from '../pipelines/templates.js';
import { buildNewJob } from '../queue/enqueue.service.js';
import type { NewJob } from '../queue/queue.queries.js';
import { lockConcurrencyGroup } from './runs.advance.queries.js';
import type { RunRow, StepRow } from './runs.queries.js';

const envName = (s: string) => s.toUpperCase().replace(/[^A-Z0-9]+/g, '_');

export function stepEnvironment(
  run: RunRow,
  step: StepRow,
  definition: CommandStep,
  scope: TemplateScope,
): Record<string, string> {
  const env: Record<string, string> = { ...definition.env, ...run.env };
  for (const [stepKey, outputs] of Object.entries(scope.outputs)) {
    for (const [name, value] of Object.entries(outputs)) env[`CAIRN_OUTPUT_${envName(stepKey)}_${envName(name)}`] = value;
  }
  return {
    ...env,
    CAIRN_RUN_ID: run.id,
    CAIRN_RUN_NUMBER: String(run.number),
    CAIRN_PROJECT_ID: run.project_id,
    CAIRN_STEP_KEY: step.key,
    CAIRN_TRIGGER: run.trigger,
    ...(run.branch ? { CAIRN_BRANCH: run.branch } : {}),
    ...(run.commit ? { CAIRN_COMMIT: run.commit } : {}),
    ...(run.message ? { CAIRN_MESSAGE: run.message } : {}),
  };
}

export async function startCommandStep(
  _deps: AppDeps,
  ctx: {
    tx: Queryable;
    run: RunRow;
    auth: AuthContext;
    scope: () => Promise<TemplateScope>;
    /** The pool's id by name in the run's organization (looked up once per transaction). */
    poolId: (name: string) => Promise<string | undefined>;
    step: StepRow;
    definition: CommandStep;
  },
): Promise<{ patch: Partial<StepRow>; newJob?: NewJob }> {
  const { tx, run, step, definition } = ctx;
  if (step.concurrency_group) {
    const busy = await lockConcurrencyGroup(tx, run.org_id, step.concurrency_group);
    if (busy >= (step.concurrency_limit ?? 1)) return { patch: { state: 'waiting', reason: 'concurrency' } };
  }
  const poolId = await ctx.poolId(definition.pool);
  if (!poolId) return { patch: { state: 'failed', reason: `there is no pool named "${definition.pool}"` } };
  const now = Date.now();
  const newJob = buildNewJob(
    ctx.auth,
    poolId,
    {
      name: definition.label,
      pool: definition.pool,
      priority: definition.priority,
      project_id: run.project_id,
      tags: definition.tags,
      commands: definition.commands,
      env: stepEnvironment(run, step, definition, await ctx.scope()),
      artifacts: definition.artifacts,
      timeout_seconds: definition.timeout_seconds,
      max_attempts: definition.max_attempts,
      retry: definition.retry,
      run_id: run.id,
      step_key: step.key,
    },
    new Date(now),
    now,
  );
  return { newJob, patch: { state: 'running', reason: null, job_id: newJob.id, jobs_started: step.jobs_started + 1 } };
}
