// Block steps: a run's step that waits for people. Starting one asks an approval inside
// the engine's transaction; where the step stands is read from the approval; an answer
// asks the engine to advance the run at once (approvals.core.ts), so nothing polls.
import type { Queryable } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { BlockStep } from '../pipelines/pipeline.model.js';
import type { StepDriver, StepOutcome } from '../runs/runs.drivers.js';
import type { StepRow } from '../runs/runs.queries.js';
import { cancelPendingApproval, createApprovalInTx } from './approvals.core.js';
import { findApproval, type ApprovalRow } from './approvals.queries.js';

/** Where a step that waits on an approval stands; undefined while it is pending. */
export function outcomeOfApproval(a: ApprovalRow): StepOutcome | undefined {
  const by = a.resolved_by?.label ?? 'someone';
  switch (a.state) {
    case 'pending':
      return undefined;
    case 'approved':
      return { state: 'passed', reason: null };
    case 'rejected':
      return { state: 'failed', reason: `rejected by ${by}${a.comment ? `: ${a.comment}` : ''}` };
    case 'expired':
      return a.on_expiry === 'continue'
        ? { state: 'passed', reason: 'approval expired (on_expiry: continue)' }
        : { state: 'failed', reason: 'approval expired' };
    case 'canceled':
      return { state: 'canceled', reason: `approval canceled by ${by}` };
  }
}

export const blockStepDriver: StepDriver<BlockStep> = {
  async start(ctx) {
    const d = ctx.definition;
    try {
      const approval = await createApprovalInTx(ctx.deps, ctx.tx, ctx.after, ctx.auth, {
        projectId: ctx.run.project_id,
        subject: { type: 'run_step', runId: ctx.run.id, stepKey: ctx.step.key },
        question: d.prompt,
        fields: d.fields,
        context: { run_number: ctx.run.number, step: d.label, branch: ctx.run.branch, commit: ctx.run.commit },
        allowedRoles: d.allowed_roles,
        allowedUsers: d.allowed_users,
        expiresInSeconds: d.expires_in_seconds ?? null,
        onExpiry: d.on_expiry,
      });
      return { state: 'blocked', reason: null, approval_id: approval.id };
    } catch (error) {
      // A step that cannot ask (an approver who is not a member, a bad field) fails with the reason.
      if (error instanceof AppError && error.status < 500) return { state: 'failed', reason: error.detail ?? error.title };
      throw error;
    }
  },

  async status(tx: Queryable, step: StepRow) {
    if (!step.approval_id) return { state: 'failed', reason: 'its approval is gone' };
    const a = await findApproval(tx, step.org_id, step.approval_id);
    return a ? (outcomeOfApproval(a) ?? { state: 'blocked', reason: null }) : { state: 'failed', reason: 'its approval is gone' };
  },

  async cancel(ctx) {
    await cancelPendingApproval(ctx, ctx.step.org_id, ctx.step.approval_id, `run step ${ctx.step.key} stopped`);
  },
};
