// The job's vocabulary: priorities, states, failure reasons, retry rules, and the views
// the API shows. Pure functions only; nothing here touches the database.
import { iso } from '../../platform/http/schemas.js';

export const PRIORITIES = ['CRITICAL', 'HIGH', 'NORMAL', 'LOW'] as const;
export type Priority = (typeof PRIORITIES)[number];
export const priorityRank = (p: Priority): number => PRIORITIES.indexOf(p);
export const priorityName = (rank: number): Priority => PRIORITIES[rank] ?? 'NORMAL';

export const LIVE_STATES = ['scheduled', 'queued', 'claimed', 'running', 'blocked'] as const;
export const FINAL_STATES = ['completed', 'failed', 'dead_lettered', 'canceled', 'timed_out'] as const;
export const JOB_STATES = [...LIVE_STATES, ...FINAL_STATES] as const;
export type LiveState = (typeof LIVE_STATES)[number];
export type FinalState = (typeof FINAL_STATES)[number];
export type JobState = LiveState | FinalState;

/**
 * Why an attempt ended without success. `exit_status`: the command exited non-zero.
 * `agent_lost`: its agent stopped heartbeating (or was deregistered). `lease_expired`:
 * the agent stopped renewing this job's lease. `timeout`: it ran past its timeout.
 * `canceled`: someone canceled it. `error`: the agent could not run it.
 */
export const FAILURE_REASONS = ['exit_status', 'agent_lost', 'lease_expired', 'timeout', 'canceled', 'error'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export interface RetryRules {
  /** Exit statuses that are worth another attempt, or 'any' non-zero status. */
  exit_statuses: number[] | 'any';
  /** Other failure reasons worth another attempt. */
  reasons: FailureReason[];
  backoff_seconds: number;
  max_backoff_seconds: number;
}

/**
 * By default only infrastructure failures are retried: a lost agent or a lapsed lease
 * says nothing about the job, while a failing test run three times silently would hide
 * a real failure. Jobs opt into retrying exit statuses (or timeouts) explicitly.
 */
export const DEFAULT_RETRY: RetryRules = {
  exit_statuses: [],
  reasons: ['agent_lost', 'lease_expired'],
  backoff_seconds: 2,
  max_backoff_seconds: 300,
};
export const DEFAULT_MAX_ATTEMPTS = 3;
export const DEFAULT_TIMEOUT_SECONDS = 3600;

export interface AttemptFailure {
  reason: FailureReason;
  exitStatus: number | null;
}

export type AttemptOutcome = { kind: 'retry'; delaySeconds: number } | { kind: 'final'; state: FinalState };

/** What happens after an attempt fails: another attempt later, or a final state. */
export function decideAfterFailure(
  job: { attempt: number; attempts_before_redrive: number; max_attempts: number; retry: RetryRules },
  failure: AttemptFailure,
  random: () => number = Math.random,
): AttemptOutcome {
  if (failure.reason === 'canceled') return { kind: 'final', state: 'canceled' };
  const rules = job.retry;
  const retryable =
    failure.reason === 'exit_status'
      ? rules.exit_statuses === 'any' || (failure.exitStatus !== null && rules.exit_statuses.includes(failure.exitStatus))
      : rules.reasons.includes(failure.reason);
  if (!retryable) return { kind: 'final', state: failure.reason === 'timeout' ? 'timed_out' : 'failed' };
  if (job.attempt - job.attempts_before_redrive >= job.max_attempts) return { kind: 'final', state: 'dead_lettered' };
  return { kind: 'retry', delaySeconds: backoffSeconds(rules, job.attempt, random) };
}

/**
 * Exponential backoff with "equal jitter": half the delay is fixed, half random, so
 * retries of jobs that failed together spread out instead of returning in a herd.
 */
export function backoffSeconds(rules: RetryRules, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(rules.max_backoff_seconds, rules.backoff_seconds * 2 ** Math.max(0, attempt - 1));
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** Agent tags as stored (`key=value`) and as shown (`{key: value}`). */
export function tagsToArray(tags: Record<string, string> | undefined): string[] {
  return Object.entries(tags ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .sort();
}
export function tagsToObject(tags: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const tag of tags) {
    const eq = tag.indexOf('=');
    out[eq < 0 ? tag : tag.slice(0, eq)] = eq < 0 ? '' : tag.slice(eq + 1);
  }
  return out;
}

export interface JobPayload {
  commands: string[];
  env: Record<string, string>;
  artifacts: string[];
}

export interface JobRow {
  id: string;
  org_id: string;
  pool_id: string;
  pool_name?: string;
  project_id: string | null;
  run_id: string | null;
  step_key: string | null;
  name: string;
  priority: number;
  seq: number;
  state: JobState;
  required_tags: string[];
  payload: JobPayload;
  timeout_seconds: number;
  max_attempts: number;
  retry: RetryRules;
  attempt: number;
  attempts_before_redrive: number;
  created_by: string;
  created_at: Date;
  run_at: Date;
  queued_at: Date | null;
  agent_id: string | null;
  lease_token: string | null;
  lease_expires_at: Date | null;
  claimed_at: Date | null;
  started_at: Date | null;
  cancel_requested_at: Date | null;
  last_failure: { reason: string; exit_status: number | null; at: string } | null;
  finished_at: Date | null;
  exit_status: number | null;
  failure_reason: string | null;
  outputs: Record<string, string> | null;
  updated_at: Date;
}

/** The job as users see it. The lease token never appears here: it is the agent's fence. */
export function presentJob(j: JobRow) {
  return {
    id: j.id,
    name: j.name,
    state: j.state,
    priority: priorityName(j.priority),
    pool: j.pool_name ?? null,
    pool_id: j.pool_id,
    project_id: j.project_id,
    run_id: j.run_id,
    step_key: j.step_key,
    tags: tagsToObject(j.required_tags),
    commands: j.payload.commands,
    env: j.payload.env,
    artifacts: j.payload.artifacts,
    timeout_seconds: j.timeout_seconds,
    max_attempts: j.max_attempts,
    retry: j.retry,
    attempt: j.attempt,
    created_by: j.created_by,
    created_at: iso(j.created_at),
    run_at: iso(j.run_at),
    queued_at: iso(j.queued_at),
    claimed_at: iso(j.claimed_at),
    started_at: iso(j.started_at),
    finished_at: iso(j.finished_at),
    agent_id: j.agent_id,
    lease_expires_at: iso(j.lease_expires_at),
    cancel_requested: j.cancel_requested_at !== null,
    exit_status: j.exit_status,
    failure_reason: j.failure_reason,
    last_failure: j.last_failure,
    outputs: j.outputs,
  };
}
export type JobView = ReturnType<typeof presentJob>;

/**
 * What an agent receives when it claims a job: everything it needs to run it, its fence,
 * and the job's own token. The two fields are added to the view rather than spread into
 * a copy: V8 copies a 33-field object with extra fields field by field, about 2 µs a job.
 */
export function presentClaimedJob(j: JobRow, jobToken: string) {
  const view = presentJob(j) as JobView & { lease_token: string; job_token: string };
  view.lease_token = j.lease_token!;
  view.job_token = jobToken;
  return view;
}
export type ClaimedJobView = ReturnType<typeof presentClaimedJob>;

/** Ids a bus event about a job names, so streams can route it (see platform/bus.ts). */
export function jobEventData(j: JobRow, extra: Record<string, unknown> = {}) {
  return {
    job_id: j.id,
    pool_id: j.pool_id,
    project_id: j.project_id,
    run_id: j.run_id,
    agent_id: j.agent_id,
    state: j.state,
    attempt: j.attempt,
    ...extra,
  };
}
