// How a deployment moves, inside the caller's transaction: opened (approval asked, or
// deploying at once, or pending behind an earlier deployment of the same service to the
// same environment), started (its job enqueued on the environment's pool), settled from its
// job's end, moved on by its approval's answer, canceled. Whoever notices a change first —
// the jobs-ended notice, a read, the sweeper, the run engine — settles it the same way
// under the row lock, so a lost notice only delays a deployment.
import { systemContext, type AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects, type AfterCommit } from '../../platform/effects.js';
import { recordAudit } from '../audit/audit.record.js';
import { actorOf, cancelPendingApproval, createApprovalInTx } from '../approvals/approvals.core.js';
import { findApproval } from '../approvals/approvals.queries.js';
import { onApprovalSettled } from '../approvals/approvals.subjects.js';
import { buildNewJob, publishEnqueued } from '../queue/enqueue.service.js';
import { cancelJobInTransaction } from '../queue/jobs.service.js';
import { findPoolIdsByName } from '../queue/jobs.queries.js';
import { insertJobs } from '../queue/queue.queries.js';
import {
  findDeployment,
  insertDeployment,
  jobStateOf,
  lockTarget,
  nextPending,
  updateDeployment,
  type DeploymentPatch,
  type DeploymentRow,
  type DeploymentState,
} from './deployments.queries.js';
import type { EnvironmentRow } from './environments.queries.js';
import { deploymentEventData } from './deployments.views.js';

export const FINAL_DEPLOYMENT_STATES: readonly DeploymentState[] = ['succeeded', 'failed', 'canceled', 'rejected'];

interface Ctx {
  deps: AppDeps;
  tx: Queryable;
  after: AfterCommit;
  auth: AuthContext;
}

export interface DeploymentSpec {
  projectId: string;
  service: string;
  version: string;
  environment: EnvironmentRow;
  commands: string[];
  runId?: string | null;
  stepKey?: string | null;
  artifactId?: string | null;
  rollbackOf?: string | null;
  promotedFrom?: string | null;
}

/** Moves a locked deployment to a new state: audited, published after the commit, its run asked to advance. */
async function moveTo(ctx: Ctx, d: DeploymentRow, patch: DeploymentPatch): Promise<DeploymentRow> {
  const row = await updateDeployment(ctx.tx, d.id, patch);
  await recordAudit(ctx.tx, ctx.auth, {
    action: `deployment.${row.state}`,
    resource: ['deployment', row.id],
    projectId: row.project_id,
    details: { from: d.state, to: row.state, reason: row.reason, job_id: row.job_id, approval_id: row.approval_id },
  });
  ctx.after.add(() => {
    publishOrgEvent(ctx.deps.bus, row.org_id, 'deployment.updated', deploymentEventData(row));
    if (row.run_id) ctx.deps.runs.requestAdvance(row.run_id);
  });
  return row;
}

/** Enqueues the deploy job, or leaves the deployment pending while another deploys to the same target. */
async function startOrWait(ctx: Ctx, d: DeploymentRow): Promise<DeploymentRow> {
  const { deploying } = await lockTarget(ctx.tx, d);
  if (deploying && deploying !== d.id) {
    const reason = `waiting for deployment ${deploying} to finish`;
    return d.state === 'pending' && d.reason === reason ? d : moveTo(ctx, d, { state: 'pending', reason });
  }
  const poolId = (await findPoolIdsByName(ctx.tx, d.org_id, [d.pool])).get(d.pool);
  if (!poolId) return moveTo(ctx, d, { state: 'failed', reason: `there is no pool named "${d.pool}"` });
  const now = Date.now();
  const job = buildNewJob(
    ctx.auth,
    poolId,
    {
      name: `deploy ${d.service} ${d.version} to ${d.environment}`,
      pool: d.pool,
      project_id: d.project_id,
      tags: d.tags,
      commands: d.commands,
      env: {
        CAIRN_DEPLOY_SERVICE: d.service,
        CAIRN_DEPLOY_VERSION: d.version,
        CAIRN_DEPLOY_ENVIRONMENT: d.environment,
        CAIRN_DEPLOYMENT_ID: d.id,
        CAIRN_PROJECT_ID: d.project_id,
        ...(d.run_id ? { CAIRN_RUN_ID: d.run_id } : {}),
        ...(d.artifact_id ? { CAIRN_ARTIFACT_ID: d.artifact_id } : {}),
        ...(d.rollback_of ? { CAIRN_DEPLOY_ROLLBACK_OF: d.rollback_of } : {}),
      },
      timeout_seconds: d.timeout_seconds ?? undefined,
      run_id: d.run_id ?? undefined,
      step_key: d.step_key ?? undefined,
    },
    new Date(now),
    now,
  );
  const [inserted] = await insertJobs(ctx.tx, ctx.auth, [job]);
  ctx.after.add(() => publishEnqueued(ctx.deps, [inserted!]));
  return moveTo(ctx, d, { state: 'deploying', reason: null, job_id: inserted!.id });
}

/** A new deployment: approval first when the environment requires one, else deploying (or pending). */
export async function openDeploymentInTx(ctx: Ctx, spec: DeploymentSpec): Promise<DeploymentRow> {
  const env = spec.environment;
  let d = await insertDeployment(ctx.tx, {
    org_id: ctx.auth.orgId,
    project_id: spec.projectId,
    service: spec.service,
    version: spec.version,
    environment: env.name,
    state: 'pending',
    run_id: spec.runId ?? null,
    step_key: spec.stepKey ?? null,
    artifact_id: spec.artifactId ?? null,
    rollback_of: spec.rollbackOf ?? null,
    promoted_from: spec.promotedFrom ?? null,
    pool: env.pool,
    tags: env.tags,
    commands: spec.commands,
    timeout_seconds: env.timeout_seconds,
    created_by: actorOf(ctx.auth),
  });
  await recordAudit(ctx.tx, ctx.auth, {
    action: 'deployment.created',
    resource: ['deployment', d.id],
    projectId: d.project_id,
    after: deploymentEventData(d),
  });
  ctx.after.add(() => publishOrgEvent(ctx.deps.bus, d.org_id, 'deployment.created', deploymentEventData(d)));
  if (env.requires_approval) {
    const what = spec.rollbackOf ? 'Roll back' : 'Deploy';
    const approval = await createApprovalInTx(ctx.deps, ctx.tx, ctx.after, ctx.auth, {
      projectId: d.project_id,
      subject: { type: 'deployment', deploymentId: d.id, runId: d.run_id },
      question: `${what} ${d.service} ${d.version} to ${d.environment}?`,
      context: { service: d.service, version: d.version, environment: d.environment, commands: d.commands },
      allowedRoles: env.approval_roles,
      allowedUserIds: env.approval_user_ids,
      expiresInSeconds: env.approval_expires_in_seconds,
      onExpiry: 'fail',
    });
    d = await moveTo(ctx, d, { state: 'awaiting_approval', reason: null, approval_id: approval.id });
    return d;
  }
  return startOrWait(ctx, d);
}

/** What a deploy job's final state means for its deployment; undefined while it may still run. */
function outcomeOfJob(state: string | null): DeploymentPatch | undefined {
  switch (state) {
    case 'completed':
      return { state: 'succeeded', reason: null };
    case 'failed':
    case 'dead_lettered':
    case 'timed_out':
      return { state: 'failed', reason: `deploy job ${state}` };
    case 'canceled':
      return { state: 'canceled', reason: 'deploy job canceled' };
    case null:
      return { state: 'failed', reason: 'its deploy job is gone' };
    default:
      return undefined;
  }
}

/** The state a deployment is really in, from its job, without writing (for the run engine's status). */
export async function effectiveState(tx: Queryable, d: DeploymentRow): Promise<DeploymentPatch> {
  if (d.state !== 'deploying' || !d.job_id) return { state: d.state, reason: d.reason };
  return outcomeOfJob(await jobStateOf(tx, d.job_id)) ?? { state: d.state, reason: d.reason };
}

/** Settles a locked deploying deployment whose job ended, then lets the next one of its target start. */
export async function settleFromJobInTx(ctx: Ctx, d: DeploymentRow): Promise<DeploymentRow> {
  if (d.state !== 'deploying' || !d.job_id) return d;
  const outcome = outcomeOfJob(await jobStateOf(ctx.tx, d.job_id));
  if (!outcome) return d;
  const row = await moveTo(ctx, d, outcome);
  await startNextOfTarget(ctx, row);
  return row;
}

async function startNextOfTarget(ctx: Ctx, d: DeploymentRow): Promise<void> {
  const next = await nextPending(ctx.tx, d);
  if (next) await startOrWait(ctx, next);
}

/** Ends a locked deployment that has not started deploying (rejected, canceled). */
async function finishUnstarted(ctx: Ctx, d: DeploymentRow, patch: DeploymentPatch): Promise<DeploymentRow> {
  const row = await moveTo(ctx, d, patch);
  // A pending one may have held no slot, but a waiting successor must not be left behind either way.
  await startNextOfTarget(ctx, row);
  return row;
}

/**
 * Locks a deployment for a cancel, its approval first: an answer locks the approval then
 * the deployment, so a cancel taking them the other way round could deadlock with it.
 */
export async function lockForCancel(tx: Queryable, orgId: string, id: string): Promise<DeploymentRow | undefined> {
  const peek = await findDeployment(tx, orgId, id);
  if (peek?.approval_id) await findApproval(tx, orgId, peek.approval_id, { forUpdate: true });
  return peek && findDeployment(tx, orgId, id, { forUpdate: true });
}

/** Cancels a deployment locked by lockForCancel: before deploying at once; while deploying, its job is told to stop. */
export async function cancelDeploymentInTx(ctx: Ctx, d: DeploymentRow, reason: string): Promise<DeploymentRow> {
  if (d.state === 'deploying' && d.job_id) {
    await cancelJobInTransaction(ctx.deps, ctx.tx, ctx.after, ctx.auth, d.job_id);
    return settleFromJobInTx(ctx, d);
  }
  if (FINAL_DEPLOYMENT_STATES.includes(d.state)) return d;
  // An approval still pending is withdrawn too (its own audit event), so nobody answers a dead question.
  if (d.state === 'awaiting_approval' && d.approval_id) {
    await cancelPendingApproval(ctx, d.org_id, d.approval_id, reason);
    const now = await findDeployment(ctx.tx, d.org_id, d.id);
    if (now && FINAL_DEPLOYMENT_STATES.includes(now.state)) return now;
  }
  return finishUnstarted(ctx, d, { state: 'canceled', reason });
}

// The answer to a deployment's approval moves the deployment in the same transaction.
onApprovalSettled('deployment', async ({ deps, tx, after, auth, approval }) => {
  const d = approval.deployment_id
    ? await findDeployment(tx, approval.org_id, approval.deployment_id, { forUpdate: true })
    : undefined;
  if (d?.state !== 'awaiting_approval') return;
  const ctx = { deps, tx, after, auth };
  const by = approval.resolved_by?.label ?? 'someone';
  switch (approval.state) {
    case 'approved':
      await startOrWait(ctx, d);
      return;
    case 'rejected':
      await finishUnstarted(ctx, d, {
        state: 'rejected',
        reason: `rejected by ${by}${approval.comment ? `: ${approval.comment}` : ''}`,
      });
      return;
    case 'expired':
      await finishUnstarted(ctx, d, { state: 'rejected', reason: 'approval expired' });
      return;
    case 'canceled':
      await finishUnstarted(ctx, d, { state: 'canceled', reason: approval.comment ?? `approval canceled by ${by}` });
      return;
  }
});

/** Settles one deployment from its job in its own transaction (the listener, the sweeper, reads). */
export async function settleDeployment(deps: AppDeps, orgId: string, id: string): Promise<DeploymentRow | undefined> {
  return transactionWithEffects(deps.db, async (tx, after) => {
    const d = await findDeployment(tx, orgId, id, { forUpdate: true });
    if (!d) return undefined;
    return settleFromJobInTx({ deps, tx, after, auth: systemContext(orgId, 'deployments') }, d);
  });
}
