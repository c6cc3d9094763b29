// Every SQL statement of approvals.
import type { Role } from '../../platform/auth.js';
import type { Queryable } from '../../platform/db/index.js';
import type { BlockField } from '../pipelines/pipeline.model.js';

export type ApprovalState = 'pending' | 'approved' | 'rejected' | 'expired' | 'canceled';
export type SubjectType = 'run_step' | 'deployment' | 'job' | 'none';
export type AnswerValue = string | boolean;

export interface ActorJson {
  type: string;
  id: string;
  label: string;
}

export interface ApprovalRow {
  id: string;
  org_id: string;
  project_id: string | null;
  subject_type: SubjectType;
  run_id: string | null;
  step_key: string | null;
  deployment_id: string | null;
  job_id: string | null;
  question: string;
  options: string[];
  fields: BlockField[];
  context: Record<string, unknown>;
  allowed_roles: Role[];
  allowed_user_ids: string[];
  expires_at: Date | null;
  on_expiry: 'fail' | 'continue';
  state: ApprovalState;
  requested_by: ActorJson;
  created_at: Date;
  resolved_at: Date | null;
  resolved_by: ActorJson | null;
  choice: string | null;
  input: Record<string, AnswerValue> | null;
  comment: string | null;
}

export type NewApprovalRow = Pick<
  ApprovalRow,
  | 'org_id'
  | 'project_id'
  | 'subject_type'
  | 'run_id'
  | 'step_key'
  | 'deployment_id'
  | 'job_id'
  | 'question'
  | 'options'
  | 'fields'
  | 'context'
  | 'allowed_roles'
  | 'allowed_user_ids'
  | 'expires_at'
  | 'on_expiry'
  | 'requested_by'
>;

export async function insertApproval(tx: Queryable, a: NewApprovalRow): Promise<ApprovalRow> {
  const { rows } = await tx.query<ApprovalRow>(
    `INSERT INTO approvals (org_id, project_id, subject_type, run_id, step_key, deployment_id, job_id, question, options,
                            fields, context, allowed_roles, allowed_user_ids, expires_at, on_expiry, requested_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING *`,
    [
      a.org_id,
      a.project_id,
      a.subject_type,
      a.run_id,
      a.step_key,
      a.deployment_id,
      a.job_id,
      a.question,
      a.options,
      JSON.stringify(a.fields),
      JSON.stringify(a.context),
      a.allowed_roles,
      a.allowed_user_ids,
      a.expires_at,
      a.on_expiry,
      JSON.stringify(a.requested_by),
    ],
  );
  return rows[0]!;
}

export async function findApproval(
  db: Queryable,
  orgId: string,
  id: string,
  opts: { forUpdate?: boolean } = {},
): Promise<ApprovalRow | undefined> {
  const { rows } = await db.query<ApprovalRow>(
    `SELECT * FROM approvals WHERE org_id = $1 AND id = $2${opts.forUpdate ? ' FOR UPDATE' : ''}`,
    [orgId, id],
  );
  return rows[0];
}

export async function resolveApproval(
  tx: Queryable,
  id: string,
  r: {
    state: Exclude<ApprovalState, 'pending'>;
    resolvedBy: ActorJson;
    choice?: string | null;
    input?: Record<string, AnswerValue> | null;
    comment?: string | null;
  },
): Promise<ApprovalRow> {
  const { rows } = await tx.query<ApprovalRow>(
    `UPDATE approvals SET state = $2, resolved_at = now(), resolved_by = $3, choice = $4, input = $5, comment = $6
      WHERE id = $1 RETURNING *`,
    [id, r.state, JSON.stringify(r.resolvedBy), r.choice ?? null, r.input ? JSON.stringify(r.input) : null, r.comment ?? null],
  );
  return rows[0]!;
}

export interface ApprovalListFilter {
  orgId: string;
  projectId?: string;
  runId?: string;
  deploymentId?: string;
  states?: readonly string[];
  /** "Waiting for me": pending, and answerable by this role or user. */
  answerableBy?: { role: string | null; userId: string | null };
  before?: { createdAt: string; id: string };
  limit: number;
}

export async function listApprovals(db: Queryable, f: ApprovalListFilter): Promise<ApprovalRow[]> {
  const states = f.answerableBy ? ['pending'] : (f.states ?? null);
  const { rows } = await db.query<ApprovalRow>(
    `SELECT * FROM approvals
      WHERE org_id = $1 AND ($2::uuid IS NULL OR project_id = $2) AND ($3::uuid IS NULL OR run_id = $3)
        AND ($4::uuid IS NULL OR deployment_id = $4) AND ($5::text[] IS NULL OR state = ANY($5))
        AND (NOT $6::boolean OR $7::text = ANY(allowed_roles) OR $8::uuid = ANY(allowed_user_ids))
        AND ($9::timestamptz IS NULL OR (created_at, id) < ($9, $10::uuid))
      ORDER BY created_at DESC, id DESC LIMIT $11`,
    [
      f.orgId,
      f.projectId ?? null,
      f.runId ?? null,
      f.deploymentId ?? null,
      states,
      f.answerableBy !== undefined,
      f.answerableBy?.role ?? null,
      f.answerableBy?.userId ?? null,
      f.before?.createdAt ?? null,
      f.before?.id ?? null,
      f.limit,
    ],
  );
  return rows;
}

/** Pending approvals past their expiry, locked for this transaction (other replicas skip them). */
export async function lockDueApprovals(tx: Queryable, limit: number): Promise<ApprovalRow[]> {
  const { rows } = await tx.query<ApprovalRow>(
    `SELECT * FROM approvals WHERE state = 'pending' AND expires_at <= now()
      ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
    [limit],
  );
  return rows;
}

export async function countPendingApprovals(db: Queryable, orgId: string, projectId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM approvals WHERE org_id = $1 AND project_id = $2 AND state = 'pending'",
    [orgId, projectId],
  );
  return rows[0]!.n;
}

/** Members of the organization named by user id or email (case-insensitive). */
export async function findMembers(
  db: Queryable,
  orgId: string,
  refs: { ids: readonly string[]; emails: readonly string[] },
): Promise<{ id: string; email: string; role: Role }[]> {
  if (refs.ids.length === 0 && refs.emails.length === 0) return [];
  const { rows } = await db.query<{ id: string; email: string; role: Role }>(
    `SELECT u.id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id
      WHERE m.org_id = $1 AND u.disabled_at IS NULL AND (u.id = ANY($2::uuid[]) OR lower(u.email) = ANY($3::text[]))`,
    [orgId, refs.ids, refs.emails.map((e) => e.toLowerCase())],
  );
  return rows;
}
