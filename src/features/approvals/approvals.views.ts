// Approvals as the API shows them, and who may answer one.
import { can, type AuthContext } from '../../platform/auth.js';
import { iso } from '../../platform/http/schemas.js';
import type { ApprovalRow } from './approvals.queries.js';

/** Holds `approvals:respond` and is among the approval's roles or people. */
export function mayRespond(a: ApprovalRow, auth: AuthContext): boolean {
  if (!can(auth, 'approvals:respond')) return false;
  return (
    (auth.role !== null && a.allowed_roles.includes(auth.role)) ||
    (auth.userId !== null && a.allowed_user_ids.includes(auth.userId))
  );
}

export function presentApproval(a: ApprovalRow, auth?: AuthContext) {
  return {
    id: a.id,
    project_id: a.project_id,
    subject: {
      type: a.subject_type,
      run_id: a.run_id,
      step_key: a.step_key,
      deployment_id: a.deployment_id,
      job_id: a.job_id,
    },
    question: a.question,
    options: a.options,
    fields: a.fields,
    context: a.context,
    allowed_roles: a.allowed_roles,
    allowed_user_ids: a.allowed_user_ids,
    expires_at: iso(a.expires_at),
    on_expiry: a.on_expiry,
    state: a.state,
    requested_by: a.requested_by,
    created_at: iso(a.created_at),
    response:
      a.state === 'approved' || a.state === 'rejected'
        ? { by: a.resolved_by!, at: iso(a.resolved_at!), choice: a.choice, input: a.input ?? {}, comment: a.comment }
        : null,
    resolved_at: iso(a.resolved_at),
    resolved_by: a.resolved_by,
    can_respond: auth ? a.state === 'pending' && mayRespond(a, auth) : false,
  };
}
export type ApprovalView = ReturnType<typeof presentApproval>;
