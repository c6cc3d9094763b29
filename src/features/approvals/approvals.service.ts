// The approvals API: ask (people with `jobs:write`, or a job's shell with its job token),
// read, list ("waiting for me" among them), answer, cancel; and the expiry pass.
import { can, systemContext, type AuthContext, type Role } from '../../platform/auth.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects } from '../../platform/effects.js';
import { BadRequestError, ConflictError, ForbiddenError, NotFoundError } from '../../platform/errors.js';
import { decodeCursor, encodeCursor } from '../../platform/http/schemas.js';
import type { BlockField } from '../pipelines/pipeline.model.js';
import { findProject } from '../projects/projects.queries.js';
import { findJob } from '../queue/jobs.queries.js';
import { createApprovalInTx, settleApprovalInTx } from './approvals.core.js';
import { checkAnswer } from './approvals.fields.js';
import { findApproval, listApprovals, lockDueApprovals, type AnswerValue, type ApprovalRow } from './approvals.queries.js';
import { mayRespond, presentApproval } from './approvals.views.js';

export interface RequestBody {
  question: string;
  project_id?: string;
  options?: string[];
  fields?: BlockField[];
  context?: Record<string, unknown>;
  allowed_roles?: Role[];
  allowed_users?: string[];
  expires_in_seconds?: number;
  on_expiry?: 'fail' | 'continue';
}

/** A job's token may read and cancel what that job asked; nothing else. */
const isAskingJob = (auth: AuthContext, a: ApprovalRow) => can(auth, 'job:self') && a.job_id !== null && a.job_id === auth.jobId;

export async function requestApproval(deps: AppDeps, auth: AuthContext, body: RequestBody) {
  let origin: { projectId: string | null; subject: { type: 'job'; jobId: string; runId: string | null } | { type: 'none' } };
  if (can(auth, 'job:self') && auth.jobId) {
    // A bot step asking a human: the approval belongs to the job's project and run.
    const job = await findJob(deps.db, auth.orgId, auth.jobId);
    if (!job) throw new NotFoundError('Job');
    if (body.project_id && body.project_id !== job.project_id) {
      throw new BadRequestError("A job asks for its own project; leave project_id out or give the job's.", 'project_mismatch');
    }
    origin = { projectId: job.project_id, subject: { type: 'job', jobId: job.id, runId: job.run_id } };
  } else if (can(auth, 'jobs:write')) {
    if (body.project_id && !(await findProject(deps.db, auth.orgId, body.project_id))) {
      throw new BadRequestError(`There is no project ${body.project_id}.`, 'unknown_project');
    }
    origin = { projectId: body.project_id ?? null, subject: { type: 'none' } };
  } else {
    throw new ForbiddenError('Asking for an approval needs the "jobs:write" permission or a job token.');
  }
  const row = await transactionWithEffects(deps.db, (tx, after) =>
    createApprovalInTx(deps, tx, after, auth, {
      ...origin,
      question: body.question,
      options: body.options,
      fields: body.fields,
      context: body.context,
      allowedRoles: body.allowed_roles,
      allowedUsers: body.allowed_users,
      expiresInSeconds: body.expires_in_seconds,
      onExpiry: body.on_expiry,
    }),
  );
  return presentApproval(row, auth);
}

async function readable(deps: Pick<AppDeps, 'db'>, auth: AuthContext, id: string): Promise<ApprovalRow> {
  const row = await findApproval(deps.db, auth.orgId, id);
  if (!row || !(can(auth, 'jobs:read') || isAskingJob(auth, row))) {
    if (row && !can(auth, 'job:self')) throw new ForbiddenError('Reading approvals needs the "jobs:read" permission.');
    throw new NotFoundError('Approval');
  }
  return row;
}

export async function getApproval(deps: Pick<AppDeps, 'db'>, auth: AuthContext, id: string) {
  return presentApproval(await readable(deps, auth, id), auth);
}

export interface ApprovalListQuery {
  project_id?: string;
  run_id?: string;
  deployment_id?: string;
  state?: string | string[];
  waiting_for_me?: boolean;
  limit?: number;
  cursor?: string;
}

export async function listApprovalsPage(deps: Pick<AppDeps, 'db'>, auth: AuthContext, q: ApprovalListQuery) {
  const limit = q.limit ?? 50;
  const cursor = q.cursor ? decodeCursor(q.cursor, 2) : undefined;
  // Someone who may not answer anything has nothing waiting for them.
  if (q.waiting_for_me && !can(auth, 'approvals:respond')) return { items: [], next_cursor: null };
  const rows = await listApprovals(deps.db, {
    orgId: auth.orgId,
    projectId: q.project_id,
    runId: q.run_id,
    deploymentId: q.deployment_id,
    states: q.state === undefined ? undefined : [q.state].flat(),
    answerableBy: q.waiting_for_me ? { role: auth.role, userId: auth.userId } : undefined,
    before: cursor ? { createdAt: String(cursor[0]), id: String(cursor[1]) } : undefined,
    limit: limit + 1,
  });
  const page = rows.slice(0, limit).map((r) => presentApproval(r, auth));
  const last = page.at(-1);
  return { items: page, next_cursor: rows.length > limit && last ? encodeCursor([last.created_at, last.id]) : null };
}

export interface RespondBody {
  decision: 'approve' | 'reject';
  choice?: string;
  input?: Record<string, AnswerValue>;
  comment?: string;
}

function checkChoice(a: ApprovalRow, body: RespondBody): string | null {
  if (body.choice === undefined) {
    if (body.decision === 'approve' && a.options.length > 0) {
      throw new BadRequestError(`Choose one of: ${a.options.join(', ')}.`, 'choice_required');
    }
    return null;
  }
  if (!a.options.includes(body.choice)) {
    throw new BadRequestError(
      a.options.length ? `The choice must be one of: ${a.options.join(', ')}.` : 'This approval offers no choices.',
      'invalid_choice',
    );
  }
  return body.choice;
}

export async function respondToApproval(deps: AppDeps, auth: AuthContext, id: string, body: RespondBody) {
  const row = await transactionWithEffects(deps.db, async (tx, after) => {
    const a = await findApproval(tx, auth.orgId, id, { forUpdate: true });
    if (!a) throw new NotFoundError('Approval');
    if (!mayRespond(a, auth)) {
      throw new ForbiddenError(
        `You are not among those who may answer this approval (roles: ${a.allowed_roles.join(', ') || 'none'}; or named people).`,
        'not_an_approver',
      );
    }
    if (a.state !== 'pending')
      throw new ConflictError(`The approval was already ${a.state}.`, 'approval_resolved', { state: a.state });
    if (a.expires_at && a.expires_at.getTime() <= Date.now()) {
      throw new ConflictError(`The approval expired at ${a.expires_at.toISOString()}.`, 'approval_expired');
    }
    const choice = checkChoice(a, body);
    const input = checkAnswer(a.fields, body.input, { requireRequired: body.decision === 'approve' });
    return settleApprovalInTx(deps, tx, after, auth, a, {
      state: body.decision === 'approve' ? 'approved' : 'rejected',
      choice,
      input: Object.keys(input).length > 0 ? input : null,
      comment: body.comment ?? null,
    });
  });
  return presentApproval(row, auth);
}

export async function cancelApproval(deps: AppDeps, auth: AuthContext, id: string, reason?: string) {
  const row = await transactionWithEffects(deps.db, async (tx, after) => {
    const a = await findApproval(tx, auth.orgId, id, { forUpdate: true });
    if (!a || !(can(auth, 'jobs:write') || isAskingJob(auth, a))) {
      if (a && !can(auth, 'job:self')) throw new ForbiddenError('Canceling approvals needs the "jobs:write" permission.');
      throw new NotFoundError('Approval');
    }
    if (a.state !== 'pending')
      throw new ConflictError(`The approval was already ${a.state}.`, 'approval_resolved', { state: a.state });
    return settleApprovalInTx(deps, tx, after, auth, a, { state: 'canceled', comment: reason ?? null });
  });
  return presentApproval(row, auth);
}

/** One expiry pass: every due pending approval (up to `limit`) expires, each in its own transaction. */
export async function expireDueApprovals(deps: AppDeps, limit = 100): Promise<number> {
  let expired = 0;
  for (let more = true; more && expired < limit;) {
    more = await transactionWithEffects(deps.db, async (tx, after) => {
      const [due] = await lockDueApprovals(tx, 1);
      if (!due) return false;
      await settleApprovalInTx(deps, tx, after, systemContext(due.org_id, 'approval-expiry'), due, { state: 'expired' });
      expired++;
      return true;
    });
  }
  return expired;
}
