// What a job's own token (`cairn_job_…`, permission job:self) may reach, decided in one
// place: its own job's outputs and artifact uploads, and reads of its own run (outputs,
// artifacts of earlier steps) — nothing of any other run. Routes that also serve users
// declare `authenticated` and call these.
import { can, type AuthContext } from '../../platform/auth.js';
import type { AppDeps } from '../../platform/deps.js';
import { BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError } from '../../platform/errors.js';
import { jobTokenMatches, parseJobToken } from '../auth/tokens.js';
import { findRun } from '../runs/runs.queries.js';
import { findLiveJob, type LiveJobRow } from './pipelines.queries.js';

export type CallerJob = LiveJobRow & { lease_token: string };

/**
 * The live job behind a job token, with the lease the token was made for. Checked again
 * here (the authenticator checked it a moment ago) so that the lease handed back is
 * exactly the token's: an attempt that ended meanwhile cannot lend its token to the next.
 */
export async function jobOfToken(deps: Pick<AppDeps, 'db' | 'jwtSecret'>, auth: AuthContext, authorization: string | undefined) {
  const token = /^Bearer (\S+)$/.exec(authorization?.trim() ?? '')?.[1];
  const parsed = token ? parseJobToken(token) : null;
  if (!auth.jobId || !parsed || parsed.jobId !== auth.jobId) throw new UnauthorizedError('A job token is required.');
  const job = await findLiveJob(deps.db, auth.orgId, auth.jobId);
  if (!job?.lease_token || !jobTokenMatches(deps.jwtSecret, job.id, job.lease_token, parsed.mac)) {
    throw new UnauthorizedError('The job token is not valid (the job ended or its lease moved on).', 'invalid_credentials');
  }
  return job as CallerJob;
}

/** Reading a run: users with jobs:read, or a job token of a job of that run. Anything else of another run is a 404. */
export async function authorizeRunRead(deps: Pick<AppDeps, 'db'>, auth: AuthContext, runId: string): Promise<void> {
  if (auth.jobId) {
    const job = await findLiveJob(deps.db, auth.orgId, auth.jobId);
    if (!job || job.run_id !== runId) throw new NotFoundError('Run');
    return;
  }
  if (!can(auth, 'jobs:read'))
    throw new ForbiddenError('This needs the "jobs:read" permission, or the token of a job of this run.');
  if (!(await findRun(deps.db, auth.orgId, runId))) throw new NotFoundError('Run');
}

/**
 * Who uploads a job's artifact: its agent (agent:work, with the lease token in
 * X-Lease-Token), or the job's own token (its shell, via `cairn step artifact upload`),
 * which acts as the job's agent under the token's lease.
 */
export async function artifactUploader(
  deps: Pick<AppDeps, 'db' | 'jwtSecret'>,
  auth: AuthContext,
  request: { jobId: string; authorization: string | undefined; leaseToken: string | undefined },
): Promise<{ auth: AuthContext; leaseToken: string }> {
  if (auth.jobId) {
    if (auth.jobId !== request.jobId) throw new NotFoundError('Job');
    const job = await jobOfToken(deps, auth, request.authorization);
    if (!job.agent_id) throw new NotFoundError('Job');
    return { auth: { ...auth, agentId: job.agent_id }, leaseToken: job.lease_token };
  }
  if (!can(auth, 'agent:work'))
    throw new ForbiddenError('Artifacts are uploaded by the job’s agent or with the job’s own token.');
  if (!request.leaseToken) throw new BadRequestError('Send the lease token in the X-Lease-Token header.', 'lease_token_required');
  return { auth, leaseToken: request.leaseToken };
}
