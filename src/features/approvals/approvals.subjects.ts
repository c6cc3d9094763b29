// What waits on an approval learns its outcome in the same transaction as the answer, so a
// deployment can never be approved without also moving on. Features that ask approvals on
// behalf of their own records (deployments) register a handler once at start-up; approvals
// never import them (they import approvals), so the dependency points one way. Run steps
// need no handler: the answer asks the engine to advance the run, which reads the approval.
import type { AuthContext } from '../../platform/auth.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import type { AfterCommit } from '../../platform/effects.js';
import type { ApprovalRow, SubjectType } from './approvals.queries.js';

export interface ApprovalSettledContext {
  deps: AppDeps;
  tx: Queryable;
  after: AfterCommit;
  /** Who answered, canceled, or the system for an expiry. */
  auth: AuthContext;
  /** The approval as it is now (approved, rejected, expired or canceled). */
  approval: ApprovalRow;
}

export type ApprovalSettledHandler = (ctx: ApprovalSettledContext) => Promise<void>;

const handlers = new Map<SubjectType, ApprovalSettledHandler>();

/** Registering the same handler again is a no-op (apps built twice in one process). */
export function onApprovalSettled(subject: SubjectType, handler: ApprovalSettledHandler): void {
  const existing = handlers.get(subject);
  if (existing && existing !== handler) throw new Error(`approvals of ${subject} already have a handler`);
  handlers.set(subject, handler);
}

export function settledHandler(subject: SubjectType): ApprovalSettledHandler | undefined {
  return handlers.get(subject);
}
