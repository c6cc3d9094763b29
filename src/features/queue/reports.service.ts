// An agent's reports about the jobs it holds: start, complete, fail (one, or a batch), and
// lease renewal. Every report carries the lease token; a report whose lease is not the
// job's current one is refused (409), so a late or duplicate report from an old lease can
// never move a job, let alone complete it twice.
import type { AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects, type AfterCommit } from '../../platform/effects.js';
import { AppError, ConflictError, NotFoundError } from '../../platform/errors.js';
import { iso } from '../../platform/http/schemas.js';
import { agentHeldJob, findJob } from './jobs.queries.js';
import { endAttempts, type AttemptEnd } from './queue.finish.js';
import { FINAL_STATES, jobEventData, presentJob, type FailureReason, type JobRow } from './queue.model.js';
import { completeJobs, type Completion } from './claims.queries.js';
import { extendLeases, startJobs } from './queue.queries.js';
import { lockJobs } from './queue.moves.queries.js';

type Deps = Pick<AppDeps, 'db' | 'bus' | 'queue' | 'config' | 'jwtSecret'>;

/**
 * Where reports are applied: on their own (statements that need no transaction commit at
 * once, the rest get one), or inside a caller's transaction (a claim that hands in finished
 * jobs), where everything shares it and its after-commit effects.
 */
export interface ReportScope {
  db: Queryable;
  transaction<T>(fn: (tx: Queryable, after: AfterCommit) => Promise<T>): Promise<T>;
  afterCommit(effect: () => void): void;
}

const onItsOwn = (deps: Deps): ReportScope => ({
  db: deps.db,
  transaction: (fn) => transactionWithEffects(deps.db, fn),
  afterCommit: (effect) => effect(),
});

export const withinTransaction = (tx: Queryable, after: AfterCommit): ReportScope => ({
  db: tx,
  transaction: (fn) => fn(tx, after),
  afterCommit: (effect) => after.add(effect),
});

export type ReportAction = 'start' | 'complete' | 'fail';

export interface Report {
  job_id: string;
  lease_token: string;
  action: ReportAction;
  exit_status?: number;
  outputs?: Record<string, string>;
  reason?: Exclude<FailureReason, 'agent_lost' | 'lease_expired'>;
  message?: string;
}

export type ReportResult =
  | { job_id: string; ok: true; state: string; attempt: number; job?: JobRow }
  | { job_id: string; ok: false; error: { status: number; code: string; detail: string } };

/**
 * Why a report could not apply: not this agent's job (404), or not its current lease (409).
 * Shared by every lease-fenced agent call (reports, log chunks, artifact uploads).
 */
export async function refusal(deps: { db: Queryable }, auth: AuthContext, jobId: string): Promise<AppError> {
  const job = await findJob(deps.db, auth.orgId, jobId);
  if (!job || !(await agentHeldJob(deps.db, auth.agentId!, jobId))) return new NotFoundError('Job');
  if ((FINAL_STATES as readonly string[]).includes(job.state)) {
    return new ConflictError(`The job already ended (${job.state}).`, 'job_finished', { state: job.state });
  }
  return new ConflictError('This lease is no longer the job’s current one; stop working on it.', 'lease_not_current', {
    state: job.state,
  });
}

const asError = (e: AppError) => ({ status: e.status, code: e.code, detail: e.detail ?? e.title });

/**
 * Applies a batch of reports. Starts and successful completions are one statement each
 * for the whole batch (with their audit events); failures go through `endAttempts`, since
 * their retry rules decide what follows. The completions of run steps and all failures
 * share one transaction with the jobs-ending hooks, so a run's next steps are queued in
 * the same commit as the step's end. Each report succeeds or fails on its own; refused
 * ones say why.
 */
export async function applyReports(
  deps: Deps,
  auth: AuthContext,
  reports: readonly Report[],
  scope: ReportScope = onItsOwn(deps),
  /** The successes were already tried as completions outside runs (a claim's own statement). */
  opts: { outsideRunsTried?: boolean } = {},
): Promise<ReportResult[]> {
  const agentId = auth.agentId!;
  const results = new Map<Report, ReportResult>();
  const applied = new Map<Report, JobRow>();
  const starts = reports.filter((r) => r.action === 'start');
  const successes = reports.filter(isSuccess);
  const failures = reports.filter((r) => r.action !== 'start' && !isSuccess(r));

  const started = await startJobs(
    scope.db,
    auth,
    agentId,
    starts.map((r) => ({ id: r.job_id, leaseToken: r.lease_token })),
    deps.config.jobLeaseSeconds,
  );
  scope.afterCommit(() => started.forEach((job) => publishOrgEvent(deps.bus, job.org_id, 'job.started', jobEventData(job))));
  matchRows(starts, started, applied);

  // A job outside any run has nothing that must commit with its end: on its own, the hot
  // path is one statement in autocommit, without BEGIN and COMMIT round trips.
  const plain = opts.outsideRunsTried
    ? []
    : await completeJobs(scope.db, auth, agentId, successes.map(asCompletion), { outsideRuns: true });
  scope.afterCommit(() => afterCompleted(deps, plain));
  matchRows(successes, plain, applied);
  const runSuccesses = successes.filter((r) => !applied.has(r));

  if (runSuccesses.length > 0 || failures.length > 0) {
    // One transaction, so what follows the jobs (a run's next steps) commits with their end.
    await scope.transaction(async (tx, after) => {
      const completed = await completeJobs(tx, auth, agentId, runSuccesses.map(asCompletion));
      after.add(() => afterCompleted(deps, completed));
      matchRows(runSuccesses, completed, applied);
      const ended = (
        await endAttempts(deps, tx, after, failureEnds(auth, failures, await lockFailed(tx, failures)), {
          advancedInTransaction: true,
        })
      ).map((e) => e.job);
      matchRows(failures, ended, applied);
      const isFinal = (job: JobRow) => (FINAL_STATES as readonly string[]).includes(job.state);
      await deps.queue.jobsEnding(tx, after, [...completed, ...ended.filter(isFinal)]);
    });
  }

  // A repeated start under the current lease is harmless: the job is already running.
  for (const r of starts.filter((s) => !applied.has(s))) {
    const job = await findJob(scope.db, auth.orgId, r.job_id);
    if (job && job.lease_token === r.lease_token && job.agent_id === agentId && job.state === 'running') applied.set(r, job);
  }
  for (const r of reports) {
    const job = applied.get(r);
    results.set(
      r,
      job ? appliedResult(r, job) : { job_id: r.job_id, ok: false, error: asError(await refusal(scope, auth, r.job_id)) },
    );
  }
  return reports.map((r) => results.get(r)!);
}

/** A report that applied: the job as it is now. */
export const appliedResult = (r: Report, job: JobRow): ReportResult => ({
  job_id: r.job_id,
  ok: true,
  state: job.state,
  attempt: job.attempt,
  job,
});

/** A successful completion (exit status 0): the kind of report the hot paths take in one statement. */
export const isSuccess = (r: Report) => r.action === 'complete' && (r.exit_status ?? 0) === 0;

export const asCompletion = (r: Report): Completion => ({ id: r.job_id, leaseToken: r.lease_token, outputs: r.outputs ?? null });

/** After the commit of successful completions: bus events, statistics, the jobs-ended hooks. */
export function afterCompleted(deps: Deps, completed: readonly JobRow[]): void {
  for (const job of completed) {
    publishOrgEvent(deps.bus, job.org_id, 'job.completed', jobEventData(job));
    const from = job.started_at ?? job.claimed_at;
    deps.queue.stats.finished({
      org_id: job.org_id,
      pool_id: job.pool_id,
      priority: job.priority,
      outcome: 'completed',
      execMs: from ? Date.now() - from.getTime() : null,
    });
  }
  deps.queue.jobsEnded(completed, { advancedInTransaction: true });
}

async function lockFailed(tx: Queryable, failures: readonly Report[]): Promise<Map<string, JobRow>> {
  if (failures.length === 0) return new Map();
  return new Map((await lockJobs(tx, [...new Set(failures.map((r) => r.job_id))])).map((j) => [j.id, j]));
}

/** The failure reports that apply: this agent's job, under its current lease, still live (one per job). */
function failureEnds(auth: AuthContext, failures: readonly Report[], locked: Map<string, JobRow>): AttemptEnd[] {
  const ends: AttemptEnd[] = [];
  for (const r of failures) {
    const job = locked.get(r.job_id);
    if (!job || job.agent_id !== auth.agentId || job.lease_token !== r.lease_token || !['claimed', 'running'].includes(job.state))
      continue;
    if (ends.some((e) => e.job.id === job.id)) continue;
    const reason = r.action === 'complete' ? 'exit_status' : (r.reason ?? 'error');
    ends.push({ job, auth, failure: { reason, exitStatus: r.exit_status ?? null, message: r.message } });
  }
  return ends;
}

/** Pairs reports with the rows their statement changed (one report per job id wins). */
export function matchRows(reports: readonly Report[], rows: readonly JobRow[], into: Map<Report, JobRow>): void {
  const byId = new Map(rows.map((row) => [row.id, row]));
  for (const r of reports) {
    const row = byId.get(r.job_id);
    if (row) {
      into.set(r, row);
      byId.delete(r.job_id);
    }
  }
}

/** One report, as the single-job routes take it: its refusal becomes the HTTP error. */
export async function applyReport(deps: Deps, auth: AuthContext, report: Report) {
  const [result] = await applyReports(deps, auth, [report]);
  if (!result!.ok) {
    const { status, code, detail } = result!.error;
    throw new AppError(status, code, status === 404 ? 'Not found' : 'Conflict', detail);
  }
  return presentJob(result!.job!);
}

/** Renews one job's lease (agents usually renew all of theirs in the agent heartbeat). */
export async function renewLease(deps: Deps, auth: AuthContext, jobId: string, leaseToken: string) {
  const job = await findJob(deps.db, auth.orgId, jobId);
  if (job && job.agent_id === auth.agentId && job.lease_token === leaseToken) {
    const [renewed] = await extendLeases(deps.db, auth.agentId, [jobId], deps.config.jobLeaseSeconds);
    if (renewed) return { lease_expires_at: iso(renewed.lease_expires_at), cancel_requested: renewed.cancel_requested };
  }
  throw await refusal(deps, auth, jobId);
}
