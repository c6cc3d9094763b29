// The run engine. `advanceRun` is the only thing that moves a run, and it is idempotent:
// in one transaction holding the run's row lock it (1) reconciles every active step with
// what carries it out (its job, approval, deployment), (2) skips steps whose needs
// failed and starts steps whose needs are met — repeatedly, until nothing changes — and
// (3) derives the run's state. Anything that may have moved a run (a job ended, an
// approval answered, a slot freed) just asks for an advance; a sweeper advances runs
// that have been idle a while, so a lost notice only delays a run, never strands it.
import { systemContext, type AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects, type AfterCommit } from '../../platform/effects.js';
import { recordAuditMany } from '../audit/audit.record.js';
import type { CommandStep } from '../pipelines/pipeline.model.js';
import type { TemplateScope } from '../pipelines/templates.js';
import { publishEnqueued } from '../queue/enqueue.service.js';
import { findPoolIdsByName } from '../queue/jobs.queries.js';
import type { JobRow } from '../queue/queue.model.js';
import { insertJobs, type NewJob } from '../queue/queue.queries.js';
import type { StepOutcome } from './runs.drivers.js';
import { startCommandStep } from './runs.steps.js';
import { saveAdvances, type RunAdvance } from './runs.advance.queries.js';
import {
  lockRun,
  outputsOfRuns,
  stepsOfRuns,
  type RunOutput,
  type RunRow,
  type RunState,
  type StepChange,
  type StepRow,
} from './runs.queries.js';

export const FINAL_RUN_STATES: readonly RunState[] = ['passed', 'failed', 'canceled'];
const FINAL_STEP_STATES = new Set(['passed', 'failed', 'canceled', 'skipped']);

/** The actor the engine acts as for a run (audit events name the run). */
export function runActor(run: RunRow): AuthContext {
  return systemContext(run.org_id, 'pipeline', `run:${run.id}`);
}

/** A step counts as done for its dependents: it passed, was skipped by its condition, or may fail. */
function satisfies(step: StepRow): boolean {
  return (
    step.state === 'passed' ||
    (step.state === 'skipped' && step.reason === 'condition') ||
    (step.state === 'failed' && step.definition.allow_failure === true)
  );
}

function blocksDependents(step: StepRow): boolean {
  return FINAL_STEP_STATES.has(step.state) && !satisfies(step);
}

/** What a command step's job says about the step; undefined while the job is still going. */
function fromJob(step: StepRow): StepOutcome | undefined {
  switch (step.job_state) {
    case 'completed':
      return { state: 'passed', reason: null };
    case 'failed':
    case 'dead_lettered':
    case 'timed_out':
      return { state: 'failed', reason: `job ${step.job_state}` };
    case 'canceled':
      return { state: 'canceled', reason: 'job canceled' };
    case null:
      return { state: 'failed', reason: 'its job is gone' };
    default:
      return undefined;
  }
}

/**
 * A run is running while a step runs or waits for a concurrency slot; blocked when all it
 * waits for is a person (its waiting steps need a blocked one); else finished.
 */
export function runStateOf(steps: Iterable<StepRow>): RunState {
  const all = [...steps];
  if (all.some((s) => s.state === 'running' || (s.state === 'waiting' && s.reason === 'concurrency'))) return 'running';
  if (all.some((s) => s.state === 'blocked')) return 'blocked';
  if (all.some((s) => s.state === 'waiting')) return 'running';
  if (all.some((s) => s.state === 'failed' && !s.definition.allow_failure)) return 'failed';
  if (all.some((s) => s.state === 'canceled')) return 'canceled';
  return 'passed';
}

export interface AdvanceResult {
  run: RunRow | null;
  /** Concurrency groups in which a step of this run let go of a slot. */
  freedGroups: string[];
  jobs: JobRow[];
}

class Changes {
  readonly changed = new Map<string, StepRow>();
  constructor(readonly steps: Map<string, StepRow>) {}

  set(step: StepRow, patch: Partial<StepRow>): void {
    const next = { ...step, ...patch };
    this.steps.set(step.key, next);
    this.changed.set(step.key, next);
  }

  toRows(original: Map<string, StepRow>): StepChange[] {
    return [...this.changed.values()].map((s) => ({
      key: s.key,
      state: s.state,
      reason: s.reason,
      job_id: s.job_id,
      approval_id: s.approval_id,
      deployment_id: s.deployment_id,
      jobs_started: s.jobs_started,
      started: s.state !== 'waiting' && s.state !== 'skipped' && original.get(s.key)?.state === 'waiting',
      finished: FINAL_STEP_STATES.has(s.state),
    }));
  }
}

/** What the advances of one transaction share: the runs' outputs read once, each pool looked up once. */
interface SharedReads {
  outputs(runId: string): Promise<RunOutput[]>;
  poolId(orgId: string, name: string): Promise<string | undefined>;
}

function sharedReads(tx: Queryable, runIds: readonly string[]): SharedReads {
  let outputs: Promise<Map<string, RunOutput[]>> | undefined;
  const pools = new Map<string, Promise<string | undefined>>();
  return {
    outputs: async (runId) => (await (outputs ??= outputsOfRuns(tx, runIds))).get(runId) ?? [],
    poolId(orgId, name) {
      const key = `${orgId}/${name}`;
      let id = pools.get(key);
      if (!id) pools.set(key, (id = findPoolIdsByName(tx, orgId, [name]).then((found) => found.get(name))));
      return id;
    },
  };
}

async function scopeOf(shared: SharedReads, run: RunRow): Promise<TemplateScope> {
  const outputs: TemplateScope['outputs'] = {};
  for (const o of await shared.outputs(run.id)) (outputs[o.step_key] ??= {})[o.key] = o.value;
  return {
    run: {
      id: run.id,
      number: run.number,
      branch: run.branch,
      commit: run.commit,
      message: run.message,
      trigger: run.trigger,
      event: run.event,
    },
    outputs,
  };
}

async function reconcile(deps: AppDeps, tx: Queryable, changes: Changes, freed: Set<string>): Promise<void> {
  for (const step of [...changes.steps.values()]) {
    if (step.state !== 'running' && step.state !== 'blocked') continue;
    const driver = step.type === 'command' ? undefined : deps.runs.drivers[step.type];
    const outcome = step.type === 'command' ? fromJob(step) : await driver?.status(tx, step);
    if (!outcome || outcome.state === step.state) continue;
    changes.set(step, { state: outcome.state, reason: outcome.reason ?? null });
    if (step.concurrency_group && FINAL_STEP_STATES.has(outcome.state)) freed.add(step.concurrency_group);
  }
}

async function startStep(
  deps: AppDeps,
  ctx: {
    tx: Queryable;
    after: AfterCommit;
    run: RunRow;
    auth: AuthContext;
    scope: () => Promise<TemplateScope>;
    poolId: (name: string) => Promise<string | undefined>;
  },
  step: StepRow,
  newJobs: NewJob[],
): Promise<Partial<StepRow> | undefined> {
  const definition = step.definition;
  if (definition.type === 'command') {
    const started = await startCommandStep(deps, { ...ctx, step, definition: definition satisfies CommandStep });
    if (started.newJob) newJobs.push(started.newJob);
    return started.patch;
  }
  const driver = deps.runs.drivers[definition.type];
  if (!driver) return { state: 'failed', reason: `${definition.type} steps are not available on this server` };
  const base = { deps, tx: ctx.tx, after: ctx.after, auth: ctx.auth, run: ctx.run, step, scope: await ctx.scope() };
  const started =
    definition.type === 'block'
      ? await deps.runs.drivers.block!.start({ ...base, definition })
      : await deps.runs.drivers.deploy!.start({ ...base, definition });
  return {
    state: started.state,
    reason: started.reason ?? null,
    job_id: started.job_id ?? step.job_id,
    approval_id: started.approval_id ?? step.approval_id,
    deployment_id: started.deployment_id ?? step.deployment_id,
    jobs_started: step.jobs_started + (started.job_id ? 1 : 0),
  };
}

/** Moves a run as far as it can go now. Safe to call any number of times, from anywhere. */
export async function advanceRun(deps: AppDeps, runId: string): Promise<AdvanceResult> {
  return transactionWithEffects(deps.db, async (tx, after) => {
    const run = await lockRun(tx, runId);
    if (!run) return { run: null, freedGroups: [], jobs: [] };
    return (await advanceLockedRuns(deps, tx, after, [run]))[0]!;
  });
}

interface Planned {
  run: RunRow;
  advance: RunAdvance;
  changed: StepRow[];
  freedGroups: string[];
  /** Built while planning, inserted for the whole batch at once (then `jobs`). */
  newJobs: NewJob[];
  jobs: JobRow[];
}

/**
 * Advances runs whose row locks the caller's transaction holds, sharing what can be: one
 * read of all their steps, one of their outputs, one insert of all their new jobs (each
 * audited with its run's request id), one write of their changes, one of their events.
 */
export async function advanceLockedRuns(
  deps: AppDeps,
  tx: Queryable,
  after: AfterCommit,
  runs: readonly RunRow[],
): Promise<AdvanceResult[]> {
  const live = runs.filter((run) => !FINAL_RUN_STATES.includes(run.state));
  if (live.length === 0) return runs.map((run) => ({ run, freedGroups: [], jobs: [] }));
  const ids = live.map((run) => run.id);
  const steps = await stepsOfRuns(tx, ids);
  const shared = sharedReads(tx, ids);
  const planned = new Map<string, Planned>();
  const saved = new Map<string, RunRow>();
  const deferred: RunAdvance[] = [];
  for (const run of live) {
    const runSteps = steps.get(run.id)!;
    const plan = await planAdvance(deps, { tx, after, shared }, run, runSteps);
    planned.set(run.id, plan);
    // A concurrency group's slots are counted from the saved steps: a run with grouped
    // steps is saved at once, so the next run of this batch counts what it took or freed.
    if (runSteps.some((step) => step.concurrency_group)) {
      for (const [id, row] of await saveAdvances(tx, [plan.advance])) saved.set(id, row);
    } else {
      deferred.push(plan.advance);
    }
  }
  for (const [id, row] of await saveAdvances(tx, deferred)) saved.set(id, row);
  const newJobs = [...planned.values()].flatMap((p) => p.newJobs);
  for (const job of await insertJobs(tx, runActor(live[0]!), newJobs, { requestIdPerRun: true })) {
    planned.get(job.run_id!)!.jobs.push(job);
  }
  const moved = [...planned.values()].filter((p) => p.advance.state !== p.run.state);
  if (moved.length > 0) {
    await recordAuditMany(
      tx,
      moved.map(({ run, advance }) => ({
        auth: runActor(run),
        input: {
          action: FINAL_RUN_STATES.includes(advance.state) ? 'run.finished' : 'run.state_changed',
          resource: ['run', run.id] as const,
          projectId: run.project_id,
          details: { from: run.state, to: advance.state },
        },
      })),
    );
  }
  after.add(() => {
    for (const p of planned.values()) {
      publishEnqueued(deps, p.jobs);
      publishRunChanges(deps, saved.get(p.run.id)!, p.changed, p.run.state);
    }
  });
  return runs.map((run) => {
    const p = planned.get(run.id);
    return p ? { run: saved.get(run.id)!, freedGroups: p.freedGroups, jobs: p.jobs } : { run, freedGroups: [], jobs: [] };
  });
}

/** One run's advance in memory (its new jobs and its drivers' records already written). */
async function planAdvance(
  deps: AppDeps,
  batch: { tx: Queryable; after: AfterCommit; shared: SharedReads },
  run: RunRow,
  steps: readonly StepRow[],
): Promise<Planned> {
  const { tx, after, shared } = batch;
  const original = new Map(steps.map((s) => [s.key, s]));
  const changes = new Changes(new Map(original));
  const freed = new Set<string>();
  const newJobs: NewJob[] = [];
  const auth = runActor(run);
  let scope: TemplateScope | undefined;
  const ctx = {
    tx,
    after,
    run,
    auth,
    scope: async () => (scope ??= await scopeOf(shared, run)),
    poolId: (name: string) => shared.poolId(run.org_id, name),
  };

  await reconcile(deps, tx, changes, freed);
  for (let progress = true; progress;) {
    progress = false;
    for (const step of [...changes.steps.values()]) {
      if (step.state !== 'waiting') continue;
      const needs = step.needs.map((key) => changes.steps.get(key)!);
      if (needs.some(blocksDependents)) {
        changes.set(step, { state: 'skipped', reason: 'dependency' });
        progress = true;
      } else if (needs.every(satisfies)) {
        const patch = await startStep(deps, ctx, step, newJobs);
        if (patch && (patch.state !== step.state || patch.reason !== step.reason)) {
          changes.set(step, patch);
          // Only a step that ended at once (a block that needs nobody, a failed start)
          // can let another step start or skip in this pass.
          if (patch.state && FINAL_STEP_STATES.has(patch.state)) progress = true;
        }
      }
    }
  }
  return {
    run,
    advance: { runId: run.id, changes: changes.toRows(original), state: runStateOf(changes.steps.values()) },
    changed: [...changes.changed.values()],
    freedGroups: [...freed],
    newJobs,
    jobs: [],
  };
}

export function publishRunChanges(deps: Pick<AppDeps, 'bus'>, run: RunRow, steps: readonly StepRow[], previous: RunState): void {
  const ids = { run_id: run.id, project_id: run.project_id };
  for (const step of steps) {
    publishOrgEvent(deps.bus, run.org_id, 'run.step_updated', {
      ...ids,
      step_key: step.key,
      state: step.state,
      reason: step.reason,
      job_id: step.job_id,
      approval_id: step.approval_id,
      deployment_id: step.deployment_id,
    });
  }
  if (run.state !== previous) {
    const type = FINAL_RUN_STATES.includes(run.state) ? 'run.finished' : 'run.updated';
    publishOrgEvent(deps.bus, run.org_id, type, { ...ids, state: run.state, number: run.number });
  }
}
