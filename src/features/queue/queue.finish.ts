// Ending attempts: the one place that decides what follows an attempt (completed, a retry
// after backoff, or a final failure state) for every path that ends one — an agent's
// report, a cancel, the reaper finding a lapsed lease, a lost agent or a timeout. It works
// on rows the caller has locked, in the caller's transaction, and leaves bus events and
// statistics for after the commit.
import type { AuthContext } from '../../platform/auth.js';
import { publishOrgEvent, type Bus } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AfterCommit } from '../../platform/effects.js';
import { recordAuditMany } from '../audit/audit.record.js';
import { decideAfterFailure, jobEventData, type FailureReason, type FinalState, type JobRow } from './queue.model.js';
import { insertAttempts, moveToHistory, scheduleRetries, type FinalMove, type RetryMove } from './queue.moves.queries.js';
import type { QueueRuntime } from './queue.runtime.js';
import type { FinishOutcome } from './queue.stats.js';

export interface AttemptEnd {
  /** The live row, locked by the caller. */
  job: JobRow;
  auth: AuthContext;
  success?: { exitStatus: number; outputs: Record<string, string> | null };
  failure?: { reason: FailureReason; exitStatus: number | null; message?: string };
}

export interface EndedJob {
  job: JobRow;
  /** Bus and audit event type: job.completed, job.failed, job.retry_scheduled, … */
  event: string;
}

const EVENT_OF_FINAL: Record<FinalState, string> = {
  completed: 'job.completed',
  failed: 'job.failed',
  dead_lettered: 'job.dead_lettered',
  canceled: 'job.canceled',
  timed_out: 'job.timed_out',
};

interface FinishDeps {
  bus: Bus;
  queue: QueueRuntime;
}

export async function endAttempts(
  deps: FinishDeps,
  tx: Queryable,
  after: AfterCommit,
  ends: readonly AttemptEnd[],
  /** The caller runs the jobs-ending hooks on what ended here (the agent's report path; see QueueRuntime). */
  opts: { advancedInTransaction?: boolean } = {},
): Promise<EndedJob[]> {
  if (ends.length === 0) return [];
  const finals: FinalMove[] = [];
  const retries: RetryMove[] = [];
  const byId = new Map(ends.map((e) => [e.job.id, e]));
  const now = new Date().toISOString();

  for (const end of ends) {
    const { job } = end;
    if (end.success) {
      finals.push({
        id: job.id,
        state: 'completed',
        exitStatus: end.success.exitStatus,
        reason: null,
        outputs: end.success.outputs,
      });
      continue;
    }
    const failure = end.failure ?? { reason: 'error' as const, exitStatus: null };
    // A job that never got to an agent has no attempt to retry: cancel ends it outright.
    const outcome =
      job.claimed_at === null
        ? ({ kind: 'final', state: failure.reason === 'canceled' ? 'canceled' : 'failed' } as const)
        : decideAfterFailure(job, failure);
    if (outcome.kind === 'retry') {
      retries.push({
        id: job.id,
        delaySeconds: outcome.delaySeconds,
        lastFailure: { reason: failure.reason, exit_status: failure.exitStatus, at: now },
      });
    } else {
      finals.push({ id: job.id, state: outcome.state, exitStatus: failure.exitStatus, reason: failure.reason, outputs: null });
    }
  }

  const finished = await moveToHistory(tx, finals);
  const retried = await scheduleRetries(tx, retries);
  await insertAttempts(
    tx,
    ends
      .filter((e) => e.job.claimed_at !== null)
      .map((e) => ({
        job: e.job,
        outcome: e.success ? 'completed' : (finished.find((f) => f.id === e.job.id)?.state ?? 'retried'),
        exitStatus: e.success?.exitStatus ?? e.failure?.exitStatus ?? null,
        reason: e.failure?.reason ?? null,
      })),
  );

  const ended: EndedJob[] = [
    ...finished.map((job) => ({ job, event: EVENT_OF_FINAL[job.state as FinalState] })),
    ...retried.map((job) => ({ job, event: 'job.retry_scheduled' })),
  ];
  await recordAuditMany(
    tx,
    ended.map(({ job, event }) => {
      const end = byId.get(job.id)!;
      return {
        auth: end.auth,
        input: {
          action: event,
          resource: ['job', job.id] as const,
          projectId: job.project_id,
          details: {
            attempt: end.job.attempt,
            state: job.state,
            agent_id: end.job.agent_id,
            exit_status: end.success?.exitStatus ?? end.failure?.exitStatus ?? null,
            reason: end.failure?.reason ?? null,
            ...(end.failure?.message ? { message: end.failure.message } : {}),
            ...(job.state === 'scheduled' ? { retry_at: job.run_at.toISOString() } : {}),
            ...(end.success?.outputs ? { outputs: end.success.outputs } : {}),
          },
        },
      };
    }),
  );

  after.add(() => {
    deps.queue.jobsEnded(finished, { advancedInTransaction: opts.advancedInTransaction === true });
    for (const { job, event } of ended) {
      const before = byId.get(job.id)!.job;
      publishOrgEvent(deps.bus, job.org_id, event, jobEventData(job, { agent_id: before.agent_id }));
      const startedAt = before.started_at ?? before.claimed_at;
      deps.queue.stats.finished({
        org_id: job.org_id,
        pool_id: job.pool_id,
        priority: job.priority,
        outcome: (job.state === 'scheduled' ? 'retried' : job.state) as FinishOutcome,
        execMs: startedAt ? Date.now() - startedAt.getTime() : null,
      });
    }
  });
  return ended;
}
