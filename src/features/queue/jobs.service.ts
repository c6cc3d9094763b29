// What users do with jobs once enqueued: read, list, cancel, reprioritize, redrive.
import type { AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects, type AfterCommit } from '../../platform/effects.js';
import { ConflictError, NotFoundError } from '../../platform/errors.js';
import { decodeCursor, encodeCursor } from '../../platform/http/schemas.js';
import { recordAudit } from '../audit/audit.record.js';
import { requirePool } from '../pools/pools.service.js';
import { publishEnqueued } from './enqueue.service.js';
import { findJob, listJobs } from './jobs.queries.js';
import { endAttempts } from './queue.finish.js';
import {
  jobEventData,
  presentJob,
  priorityRank,
  type JobRow,
  type JobState,
  type JobView,
  type Priority,
} from './queue.model.js';
import { lockJobs, markCancelRequested, moveFromHistory, setPriority } from './queue.moves.queries.js';

type Deps = Pick<AppDeps, 'db' | 'bus' | 'queue' | 'config'>;

export async function getJob(deps: Pick<AppDeps, 'db'>, auth: AuthContext, id: string): Promise<JobView> {
  const job = await findJob(deps.db, auth.orgId, id);
  if (!job) throw new NotFoundError('Job');
  return presentJob(job);
}

export interface JobListQuery {
  state?: JobState | JobState[];
  pool?: string;
  project_id?: string;
  run_id?: string;
  agent_id?: string;
  priority?: Priority;
  limit?: number;
  cursor?: string;
}

export async function listJobsPage(deps: Deps, auth: AuthContext, q: JobListQuery) {
  const limit = q.limit ?? 50;
  const cursor = q.cursor ? decodeCursor(q.cursor, 2) : undefined;
  const pool = q.pool ? await requirePool(deps, auth, q.pool) : undefined;
  const rows = await listJobs(deps.db, {
    orgId: auth.orgId,
    states: q.state === undefined ? undefined : [q.state].flat(),
    poolId: pool?.id,
    projectId: q.project_id,
    runId: q.run_id,
    agentId: q.agent_id,
    priority: q.priority ? priorityRank(q.priority) : undefined,
    before: cursor ? { createdAt: String(cursor[0]), id: String(cursor[1]) } : undefined,
    limit: limit + 1,
  });
  const page = rows.slice(0, limit).map(presentJob);
  const last = page.at(-1);
  return { items: page, next_cursor: rows.length > limit && last ? encodeCursor([last.created_at, last.id]) : null };
}

/**
 * Cancel. A job no agent holds ends at once (`canceled`). A claimed job that has not
 * started ends at once too (its agent's start is refused). A running job is marked: its
 * agent hears it on its next heartbeat or log upload, stops the process (SIGTERM, then
 * SIGKILL) and reports `canceled`; if it never does, the reaper ends it after a grace.
 */
export async function cancelJob(deps: Deps, auth: AuthContext, id: string): Promise<JobView> {
  const existing = await findJob(deps.db, auth.orgId, id);
  if (!existing) throw new NotFoundError('Job');
  const result = await transactionWithEffects(deps.db, (tx, after) => cancelJobInTransaction(deps, tx, after, auth, id));
  if (!result) {
    const now = (await findJob(deps.db, auth.orgId, id))!;
    throw new ConflictError(`The job already ended (${now.state}).`, 'job_finished', { state: now.state });
  }
  return presentJob(result);
}

/**
 * Cancels a live job inside the caller's transaction (runs cancel their steps' jobs this
 * way). Returns the job after the change, or null when it had already ended.
 */
export async function cancelJobInTransaction(
  deps: Pick<AppDeps, 'bus' | 'queue'>,
  tx: Queryable,
  after: AfterCommit,
  auth: AuthContext,
  id: string,
): Promise<JobRow | null> {
  const [job] = await lockJobs(tx, [id]);
  if (!job) return null;
  if (job.state === 'running') {
    const marked = await markCancelRequested(tx, id);
    await recordAudit(tx, auth, { action: 'job.cancel_requested', resource: ['job', id], projectId: job.project_id });
    after.add(() => publishOrgEvent(deps.bus, job.org_id, 'job.cancel_requested', jobEventData(marked)));
    return marked;
  }
  const [ended] = await endAttempts(deps, tx, after, [
    { job: { ...job, claimed_at: null }, auth, failure: { reason: 'canceled', exitStatus: null } },
  ]);
  return ended!.job;
}

export async function changePriority(deps: Deps, auth: AuthContext, id: string, priority: Priority): Promise<JobView> {
  if (!(await findJob(deps.db, auth.orgId, id))) throw new NotFoundError('Job');
  const job = await transactionWithEffects(deps.db, async (tx, after) => {
    const [before] = await lockJobs(tx, [id]);
    if (!before || !['scheduled', 'queued', 'blocked'].includes(before.state)) {
      throw new ConflictError('Only a job that no agent has claimed yet can change priority.', 'job_already_claimed', {
        state: before?.state ?? 'finished',
      });
    }
    const row = await setPriority(tx, id, priorityRank(priority));
    await recordAudit(tx, auth, {
      action: 'job.priority_changed',
      resource: ['job', id],
      projectId: row.project_id,
      details: { from: before.priority, to: row.priority },
    });
    after.add(() => publishOrgEvent(deps.bus, row.org_id, 'job.priority_changed', jobEventData(row, { priority })));
    return row;
  });
  return presentJob(job);
}

/** A dead-lettered (or failed, or timed-out) job goes back to the queue with a fresh attempt budget (attempt numbers keep counting). */
export async function redriveJob(deps: Deps, auth: AuthContext, id: string): Promise<JobView> {
  const existing = await findJob(deps.db, auth.orgId, id);
  if (!existing) throw new NotFoundError('Job');
  const job = await transactionWithEffects(deps.db, async (tx, after) => {
    const row = await moveFromHistory(tx, auth.orgId, id, ['dead_lettered', 'failed', 'timed_out']);
    if (!row) {
      throw new ConflictError(
        `Only dead-lettered, failed or timed-out jobs can be redriven; this one is ${existing.state}.`,
        'job_not_redrivable',
        { state: existing.state },
      );
    }
    await recordAudit(tx, auth, {
      action: 'job.redriven',
      resource: ['job', id],
      projectId: row.project_id,
      details: { previous_state: existing.state, previous_attempts: existing.attempt },
    });
    after.add(() => publishEnqueued(deps, [row]));
    return row;
  });
  return presentJob(job);
}
