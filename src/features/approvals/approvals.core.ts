// Asking and settling an approval inside someone's transaction: the API, the block-step
// driver and deployments all go through these two functions, so every approval is audited,
// published and followed up the same way whoever asked.
import type { AuthContext, Role } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import type { AfterCommit } from '../../platform/effects.js';
import { BadRequestError } from '../../platform/errors.js';
import { recordAudit } from '../audit/audit.record.js';
import type { BlockField } from '../pipelines/pipeline.model.js';
import { insertRunOutputs } from '../runs/runs.queries.js';
import { answerAsOutputs, checkFieldDefinitions, expandRoles } from './approvals.fields.js';
import {
  findApproval,
  findMembers,
  insertApproval,
  resolveApproval,
  type ActorJson,
  type AnswerValue,
  type ApprovalRow,
  type ApprovalState,
} from './approvals.queries.js';
import { settledHandler } from './approvals.subjects.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface ApprovalRequest {
  projectId: string | null;
  subject:
    | { type: 'run_step'; runId: string; stepKey: string }
    | { type: 'deployment'; deploymentId: string; runId?: string | null }
    | { type: 'job'; jobId: string; runId?: string | null }
    | { type: 'none' };
  question: string;
  options?: string[];
  fields?: BlockField[];
  context?: Record<string, unknown>;
  allowedRoles?: Role[];
  /** User ids or emails of members of the organization (checked now). */
  allowedUsers?: string[];
  /** User ids checked when they were configured (an environment's approvers). */
  allowedUserIds?: string[];
  expiresInSeconds?: number | null;
  onExpiry?: 'fail' | 'continue';
}

export const actorOf = (auth: AuthContext): ActorJson => ({ ...auth.actor });

/** User ids for a list of ids and emails; every one must name a member, or nothing is asked. */
export async function resolveUsers(db: Queryable, orgId: string, refs: readonly string[]): Promise<string[]> {
  if (refs.length === 0) return [];
  const ids = refs.filter((r) => UUID.test(r)).map((r) => r.toLowerCase());
  const emails = refs.filter((r) => !UUID.test(r)).map((r) => r.toLowerCase());
  const members = await findMembers(db, orgId, { ids, emails });
  const known = new Set(members.flatMap((m) => [m.id, m.email.toLowerCase()]));
  const unknown = refs.filter((r) => !known.has(r.toLowerCase()));
  if (unknown.length > 0) {
    throw new BadRequestError(
      `Who may answer names no member of this organization: ${unknown.join(', ')}.`,
      'unknown_approvers',
      { unknown },
    );
  }
  return [...new Set(members.map((m) => m.id))];
}

export function approvalEventData(a: ApprovalRow): Record<string, unknown> {
  return {
    approval_id: a.id,
    project_id: a.project_id,
    run_id: a.run_id,
    step_key: a.step_key,
    deployment_id: a.deployment_id,
    job_id: a.job_id,
    subject_type: a.subject_type,
    question: a.question,
    state: a.state,
    // The streams route approval.* to "waiting for me" with these two; keep the names.
    allowed_roles: a.allowed_roles,
    allowed_user_ids: a.allowed_user_ids,
    expires_at: a.expires_at?.toISOString() ?? null,
  };
}

export async function createApprovalInTx(
  deps: Pick<AppDeps, 'bus'>,
  tx: Queryable,
  after: AfterCommit,
  auth: AuthContext,
  req: ApprovalRequest,
): Promise<ApprovalRow> {
  const fields = req.fields ?? [];
  checkFieldDefinitions(fields);
  const options = [...new Set(req.options ?? [])];
  const userIds = [...new Set([...(await resolveUsers(tx, auth.orgId, req.allowedUsers ?? [])), ...(req.allowedUserIds ?? [])])];
  const s = req.subject;
  const row = await insertApproval(tx, {
    org_id: auth.orgId,
    project_id: req.projectId,
    subject_type: s.type,
    run_id: s.type === 'none' ? null : (s.runId ?? null),
    step_key: s.type === 'run_step' ? s.stepKey : null,
    deployment_id: s.type === 'deployment' ? s.deploymentId : null,
    job_id: s.type === 'job' ? s.jobId : null,
    question: req.question,
    options,
    fields,
    context: req.context ?? {},
    allowed_roles: expandRoles(req.allowedRoles ?? [], userIds.length > 0),
    allowed_user_ids: userIds,
    expires_at: req.expiresInSeconds ? new Date(Date.now() + req.expiresInSeconds * 1000) : null,
    on_expiry: req.onExpiry ?? 'fail',
    requested_by: actorOf(auth),
  });
  await recordAudit(tx, auth, {
    action: 'approval.requested',
    resource: ['approval', row.id],
    projectId: row.project_id,
    after: { ...approvalEventData(row), options, fields: fields.map((f) => f.key), on_expiry: row.on_expiry },
  });
  after.add(() => publishOrgEvent(deps.bus, row.org_id, 'approval.requested', approvalEventData(row)));
  return row;
}

const ACTIONS: Record<Exclude<ApprovalState, 'pending'>, string> = {
  approved: 'approval.responded',
  rejected: 'approval.responded',
  expired: 'approval.expired',
  canceled: 'approval.canceled',
};

/**
 * Ends a pending approval (the caller holds its row lock): records the outcome, hands a
 * block step's answer on as the step's outputs, tells what waited on it, and advances its
 * run — all in the same transaction, so the step's dependents are queued with the answer —
 * then publishes the event after the commit. A caller that is itself changing the run
 * (stopping its steps) passes `runLockedByCaller`: the run is then advanced after the commit.
 */
export async function settleApprovalInTx(
  deps: AppDeps,
  tx: Queryable,
  after: AfterCommit,
  auth: AuthContext,
  approval: ApprovalRow,
  outcome: {
    state: Exclude<ApprovalState, 'pending'>;
    choice?: string | null;
    input?: Record<string, AnswerValue> | null;
    comment?: string | null;
  },
  opts: { runLockedByCaller?: boolean } = {},
): Promise<ApprovalRow> {
  const row = await resolveApproval(tx, approval.id, { ...outcome, resolvedBy: actorOf(auth) });
  const action = ACTIONS[outcome.state];
  await recordAudit(tx, auth, {
    action,
    resource: ['approval', row.id],
    projectId: row.project_id,
    details: { state: row.state, choice: row.choice, input: row.input, comment: row.comment, run_id: row.run_id },
  });
  if (row.subject_type === 'run_step' && row.state === 'approved' && row.input) {
    await insertRunOutputs(tx, {
      orgId: row.org_id,
      runId: row.run_id!,
      stepKey: row.step_key!,
      values: answerAsOutputs(row.input),
    });
  }
  await settledHandler(row.subject_type)?.({ deps, tx, after, auth, approval: row });
  if (row.run_id && !opts.runLockedByCaller) await deps.runs.advanceInTransaction(tx, after, [row.run_id]);
  after.add(() => {
    publishOrgEvent(deps.bus, row.org_id, action, {
      ...approvalEventData(row),
      choice: row.choice,
      resolved_by: row.resolved_by?.label ?? null,
    });
    if (row.run_id && opts.runLockedByCaller) deps.runs.requestAdvance(row.run_id);
  });
  return row;
}

/** Withdraws an approval if it is still pending (its run step or deployment was stopped). */
export async function cancelPendingApproval(
  ctx: { deps: AppDeps; tx: Queryable; after: AfterCommit; auth: AuthContext },
  orgId: string,
  approvalId: string | null,
  reason: string,
): Promise<void> {
  if (!approvalId) return;
  const a = await findApproval(ctx.tx, orgId, approvalId, { forUpdate: true });
  if (a?.state !== 'pending') return;
  await settleApprovalInTx(
    ctx.deps,
    ctx.tx,
    ctx.after,
    ctx.auth,
    a,
    { state: 'canceled', comment: reason },
    { runLockedByCaller: true },
  );
}
