// The queue's leader loop (one replica at a time, advisory lock). Every tick it:
//   1. makes scheduled jobs whose time came claimable (delays, retry backoffs);
//   2. marks agents silent for `heartbeat × missed` seconds lost, and ends their jobs as
//      `agent_lost` (their retry rules send them to other agents);
//   3. ends leased jobs whose lease lapsed (`lease_expired`), that ran past their timeout
//      plus a grace (`timeout` — the agent enforces the timeout itself first), or whose
//      cancel the agent ignored for a grace (`canceled`);
//   4. now and then, prunes history past retention (then the logs, artifacts and blobs
//      of the jobs it pruned).
// Nothing waits on a poll interval that matters for latency: wake-ups for promoted jobs
// go out on the bus like any enqueue.
import type { FastifyBaseLogger } from 'fastify';
import { systemContext } from '../../platform/auth.js';
import { createBlobStore } from '../../platform/blobs.js';
import { publishOrgEvent } from '../../platform/bus.js';
import { LOCK_KEYS } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects } from '../../platform/effects.js';
import { startLeaderLoop, type LeaderLoop } from '../../platform/leader.js';
import { pruneLogsAndArtifacts } from '../artifacts/artifacts.retention.js';
import { recordAuditMany } from '../audit/audit.record.js';
import { insertStatusEvents, markSilentAgentsLost } from '../agents/agents.queries.js';
import { lostAfterMs } from '../agents/agents.service.js';
import { publishEnqueued } from './enqueue.service.js';
import { endAttempts, type AttemptEnd } from './queue.finish.js';
import type { FailureReason, JobRow } from './queue.model.js';
import { lockLeasedJobsOfAgents, lockOverdueJobs, promoteDueJobs, pruneHistory } from './queue.moves.queries.js';

export const MAINTENANCE_INTERVAL_MS = 1_000;
const PRUNE_EVERY_MS = 10 * 60_000;
const BATCH = 1_000;

type Deps = Pick<AppDeps, 'db' | 'bus' | 'queue' | 'config'>;

export interface MaintenanceReport {
  promoted: number;
  agents_lost: number;
  leases_expired: number;
  timed_out: number;
  cancels_forced: number;
}

const reaper = (orgId: string) => systemContext(orgId, 'queue-reaper');

/** `orgId` limits a pass to one organization (the admin endpoint); the loop does all. */
export async function promoteDue(deps: Deps, orgId?: string): Promise<number> {
  let total = 0;
  for (;;) {
    const jobs = await promoteDueJobs(deps.db, BATCH, orgId);
    if (jobs.length > 0) publishEnqueued(deps, jobs);
    total += jobs.length;
    if (jobs.length < BATCH) return total;
  }
}

export async function reapLostAgents(deps: Deps, orgId?: string): Promise<number> {
  const cutoff = new Date(Date.now() - lostAfterMs(deps.config));
  const lost = await transactionWithEffects(deps.db, async (tx, after) => {
    const agents = await markSilentAgentsLost(tx, cutoff, BATCH, orgId);
    if (agents.length === 0) return agents;
    await insertStatusEvents(
      tx,
      agents.map((a) => ({ agentId: a.id, orgId: a.org_id, from: a.previous, to: 'lost', reason: 'no heartbeat' })),
    );
    await recordAuditMany(
      tx,
      agents.map((a) => ({
        auth: reaper(a.org_id),
        input: {
          action: 'agent.lost',
          resource: ['agent', a.id] as const,
          details: { previous: a.previous, silent_since: cutoff },
        },
      })),
    );
    const jobs = await lockLeasedJobsOfAgents(
      tx,
      agents.map((a) => a.id),
    );
    await endAttempts(
      deps,
      tx,
      after,
      jobs.map((job) => endFor(job, 'agent_lost', 'its agent stopped heartbeating')),
    );
    after.add(() =>
      agents.forEach((a) => publishOrgEvent(deps.bus, a.org_id, 'agent.lost', { agent_id: a.id, pool_id: a.pool_id })),
    );
    return agents;
  });
  return lost.length;
}

function endFor(job: JobRow, reason: FailureReason, message: string): AttemptEnd {
  return { job, auth: reaper(job.org_id), failure: { reason, exitStatus: null, message } };
}

/** Why the reaper ends a leased job, most specific first. */
function overdueReason(job: JobRow, now: number, cancelGraceMs: number, timeoutGraceMs: number): [FailureReason, string] {
  if (job.cancel_requested_at && job.cancel_requested_at.getTime() + cancelGraceMs < now) {
    return ['canceled', 'the agent did not confirm the cancel in time'];
  }
  if (job.state === 'running' && job.started_at && job.started_at.getTime() + job.timeout_seconds * 1000 + timeoutGraceMs < now) {
    return ['timeout', `ran past its ${job.timeout_seconds} s timeout`];
  }
  return ['lease_expired', 'the agent stopped renewing its lease'];
}

export async function reapOverdueJobs(deps: Deps, orgId?: string): Promise<Omit<MaintenanceReport, 'promoted' | 'agents_lost'>> {
  const counts = { leases_expired: 0, timed_out: 0, cancels_forced: 0 };
  const graceMs = deps.config.jobLeaseSeconds * 1000;
  await transactionWithEffects(deps.db, async (tx, after) => {
    const jobs = await lockOverdueJobs(tx, {
      timeoutGraceSeconds: deps.config.jobLeaseSeconds,
      cancelGraceSeconds: deps.config.jobLeaseSeconds,
      limit: BATCH,
      orgId,
    });
    const now = Date.now();
    const ends = jobs.map((job) => {
      const [reason, message] = overdueReason(job, now, graceMs, graceMs);
      if (reason === 'canceled') counts.cancels_forced++;
      else if (reason === 'timeout') counts.timed_out++;
      else counts.leases_expired++;
      return endFor(job, reason, message);
    });
    await endAttempts(deps, tx, after, ends);
  });
  return counts;
}

/** One pass of everything; also what `POST /queue/maintenance/requeue-expired` runs. */
export async function runMaintenance(deps: Deps, orgId?: string): Promise<MaintenanceReport> {
  const promoted = await promoteDue(deps, orgId);
  const agents_lost = await reapLostAgents(deps, orgId);
  const overdue = await reapOverdueJobs(deps, orgId);
  return { promoted, agents_lost, ...overdue };
}

export function startQueueMaintenance(deps: Deps, log: FastifyBaseLogger): LeaderLoop {
  let lastPrune = 0;
  return startLeaderLoop(deps.db, {
    name: 'queue-maintenance',
    lockKey: LOCK_KEYS.queueMaintenance,
    intervalMs: MAINTENANCE_INTERVAL_MS,
    log,
    async tick() {
      const report = await runMaintenance(deps);
      if (report.agents_lost || report.leases_expired || report.timed_out || report.cancels_forced) {
        log.info({ ...report }, 'queue maintenance ended overdue work');
      }
      if (Date.now() - lastPrune > PRUNE_EVERY_MS) {
        lastPrune = Date.now();
        const cutoff = new Date(Date.now() - deps.config.jobHistoryDays * 86_400_000);
        while ((await pruneHistory(deps.db, cutoff, 5_000)) > 0) {
          // keep pruning in bounded statements until nothing is older than the cutoff
        }
        await pruneLogsAndArtifacts(deps.db, createBlobStore(deps.config.blobDir), cutoff);
      }
    },
  });
}
