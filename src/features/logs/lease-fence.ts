// The lease fence for agent writes that are not reports (log chunks, artifact uploads):
// the write happens in a transaction that holds the job under this agent's current lease.
// A refusal has the same meaning as for reports (404 never held, 409 job_finished or
// lease_not_current), computed once the transaction is over: on PGlite a query outside an
// open transaction would wait for it.
import type { AuthContext } from '../../platform/auth.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects, type AfterCommit } from '../../platform/effects.js';
import { refusal } from '../queue/reports.service.js';
import { lockLeasedJob, type LeasedJob } from './logs.queries.js';

const REFUSED = Symbol('refused');

export async function withLeasedJob<T>(
  deps: Pick<AppDeps, 'db'>,
  auth: AuthContext,
  jobId: string,
  leaseToken: string,
  fn: (tx: Queryable, job: LeasedJob, after: AfterCommit) => Promise<T>,
): Promise<T> {
  const result = await transactionWithEffects(deps.db, async (tx, after) => {
    const job = await lockLeasedJob(tx, { orgId: auth.orgId, agentId: auth.agentId!, jobId, leaseToken });
    return job ? fn(tx, job, after) : REFUSED;
  });
  if (result === REFUSED) throw await refusal(deps, auth, jobId);
  return result;
}
