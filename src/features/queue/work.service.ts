// The agent's claim: jobs of its pool and tags, leased to it, optionally long-polling until
// work arrives, optionally started at once and optionally handing in finished jobs in the
// same round trip (reports.service.ts applies those).
import type { AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects } from '../../platform/effects.js';
import { NotFoundError } from '../../platform/errors.js';
import { findAgentWork } from '../agents/agents.queries.js';
import { signJobToken } from '../auth/tokens.js';
import { jobEventData, presentClaimedJob, type ClaimedJobView, type JobRow } from './queue.model.js';
import { claimJobs } from './claims.queries.js';
import type { WaitHandle } from './queue.wakeups.js';
import {
  afterCompleted,
  applyReports,
  appliedResult,
  asCompletion,
  isSuccess,
  matchRows,
  withinTransaction,
  type Report,
  type ReportResult,
} from './reports.service.js';

type Deps = Pick<AppDeps, 'db' | 'bus' | 'queue' | 'config' | 'jwtSecret'>;

function afterClaim(deps: Deps, jobs: readonly JobRow[]): void {
  for (const job of jobs) {
    publishOrgEvent(deps.bus, job.org_id, 'job.claimed', jobEventData(job));
    if (job.state === 'running') publishOrgEvent(deps.bus, job.org_id, 'job.started', jobEventData(job));
    const readyAt = job.queued_at ?? job.created_at;
    deps.queue.stats.claimed({
      org_id: job.org_id,
      pool_id: job.pool_id,
      priority: job.priority,
      waitMs: job.claimed_at!.getTime() - readyAt.getTime(),
    });
  }
}

function claimNow(deps: Deps, db: Queryable, auth: AuthContext, max: number, start: boolean): Promise<JobRow[]> {
  return claimJobs(db, auth, auth.agentId!, max, deps.config.jobLeaseSeconds, { start });
}

export interface ClaimInput {
  max?: number;
  wait_seconds?: number;
  /** Claimed jobs go straight to `running`: the agent skips its `start` report. */
  start?: boolean;
  /** Reports applied before claiming (finished jobs free their slots), answered in `results`. */
  reports?: readonly Report[];
}

export interface ClaimAnswer {
  jobs: ClaimedJobView[];
  lease_seconds: number;
  results?: ReportResult[];
}

/**
 * Claims up to `max` jobs. With `waitSeconds`, an empty queue parks the request until a
 * matching job becomes claimable on any replica (bus wake-up) or the wait ends. The waiter
 * is registered before the claim that parks it, so a job enqueued in between still wakes it.
 * Only an active agent parks as a waiter: a paused or draining one could claim nothing, so
 * it would only swallow wake-ups meant for others; it waits out its poll instead. A client
 * that goes away (`signal`) stops the poll before anything more is claimed for it.
 * `reports` are applied first, so an agent can hand in the jobs it finished and ask for the
 * next ones in one round trip; a claim that waits should not carry them, since their
 * answers come back with its own.
 */
export async function claim(deps: Deps, auth: AuthContext, input: ClaimInput, signal?: AbortSignal): Promise<ClaimAnswer> {
  const max = input.max ?? 1;
  const start = input.start === true;
  const answer = (jobs: readonly JobRow[], results?: ReportResult[]): ClaimAnswer => ({
    jobs: jobs.map((job) => presentClaimedJob(job, signJobToken(deps.jwtSecret, job.id, job.lease_token!))),
    lease_seconds: deps.config.jobLeaseSeconds,
    ...(results ? { results } : {}),
  });
  if (!input.reports?.length) return answer(await claimWaiting(deps, auth, input, signal));

  const first = await handInAndClaim(deps, auth, input.reports, max, start);
  if (first.jobs.length > 0 || !input.wait_seconds || signal?.aborted) return answer(first.jobs, first.results);
  return answer(await claimWaiting(deps, auth, input, signal), first.results);
}

/**
 * The reports, then the first claim, with one commit (one WAL flush) for the jobs handed in
 * and the jobs handed out, which is what bounds a small machine. The usual hand-in (only
 * successful completions of jobs outside runs) is one autocommit statement with the claim,
 * shared with the hand-ins of other agents of the pool that arrive meanwhile
 * (queue.handins.ts); whatever that statement left (a refusal, a run step, a failure) is
 * applied with the claim in one transaction, as the reports route would apply it.
 */
async function handInAndClaim(deps: Deps, auth: AuthContext, reports: readonly Report[], max: number, start: boolean) {
  const results = new Map<Report, ReportResult>();
  let rest = reports;
  const fastPath = reports.every(isSuccess);
  if (fastPath) {
    const fast = await deps.queue.handIns.submit({
      orgId: auth.orgId,
      poolId: auth.poolId!,
      agentId: auth.agentId!,
      actor: auth,
      completions: reports.map(asCompletion),
      max,
      start,
      leaseSeconds: deps.config.jobLeaseSeconds,
    });
    afterCompleted(deps, fast.completed);
    afterClaim(deps, fast.claimed);
    const applied = new Map<Report, JobRow>();
    matchRows(reports, fast.completed, applied);
    for (const [r, job] of applied) results.set(r, appliedResult(r, job));
    rest = reports.filter((r) => !applied.has(r));
    const answered = () => reports.map((r) => results.get(r)!);
    if (rest.length === 0 && fast.claimTried) return { jobs: fast.claimed, results: answered() };
    if (rest.length === 0) {
      // The shared statement did not claim for this agent (another agent's tags led it, or
      // this one is not active): it claims on its own, as without reports.
      const jobs = await claimNow(deps, deps.db, auth, max, start);
      afterClaim(deps, jobs);
      return { jobs, results: answered() };
    }
  }
  const jobs = await transactionWithEffects(deps.db, async (tx, after) => {
    // What the statement left cannot complete outside a run: not tried a second time.
    const restResults = await applyReports(deps, auth, rest, withinTransaction(tx, after), { outsideRunsTried: fastPath });
    rest.forEach((r, i) => results.set(r, restResults[i]!));
    const claimed = await claimNow(deps, tx, auth, max, start);
    after.add(() => afterClaim(deps, claimed));
    return claimed;
  });
  return { jobs, results: reports.map((r) => results.get(r)!) };
}

async function claimWaiting(deps: Deps, auth: AuthContext, input: ClaimInput, signal?: AbortSignal): Promise<JobRow[]> {
  const max = input.max ?? 1;
  const start = input.start === true;
  const deadline = Date.now() + Math.min(input.wait_seconds ?? 0, deps.config.claimMaxWaitSeconds) * 1000;
  let handle: WaitHandle | undefined;
  try {
    for (;;) {
      const jobs = await claimNow(deps, deps.db, auth, max, start);
      afterClaim(deps, jobs);
      if (jobs.length > 0 || Date.now() >= deadline || signal?.aborted) return jobs;
      if (!handle) {
        const agent = await findAgentWork(deps.db, auth.agentId!);
        if (!agent) throw new NotFoundError('Agent');
        if (agent.status !== 'active') {
          await sleepUntil(deadline, signal);
          return [];
        }
        // Registered before claiming once more, so a job enqueued meanwhile still wakes it.
        handle = deps.queue.wakeups.register(agent.pool_id, agent.tags);
        continue;
      }
      const outcome = await handle.until(deadline, signal);
      if (outcome !== 'woken') return [];
      // A woken waiter is spent: the next pass claims, and parks a fresh one if it got nothing.
      handle.cancel();
      handle = undefined;
    }
  } finally {
    handle?.cancel();
  }
}

function sleepUntil(deadline: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
    signal?.addEventListener('abort', done, { once: true });
  });
}
