// Statements for decisions taken with the jobs locked (fail, retry, cancel, priority,
// redrive out of the history) and for the maintenance loop (due retries, lapsed leases,
// lost agents' jobs, history pruning). The hot path is in queue.queries.ts.
import type { Queryable } from '../../platform/db/index.js';
import { copyColumns, WITH_POOL_NAME } from './queue.columns.js';
import type { FinalState, JobRow } from './queue.model.js';

/** Locks live jobs for a decision (finish, retry, cancel). Missing ids are simply absent. */
export async function lockJobs(tx: Queryable, ids: readonly string[], opts: { skipLocked?: boolean } = {}): Promise<JobRow[]> {
  const { rows } = await tx.query<JobRow>(
    `SELECT j.*, ${WITH_POOL_NAME} FROM jobs j WHERE j.id = ANY($1::uuid[]) ORDER BY j.id
       FOR UPDATE OF j${opts.skipLocked ? ' SKIP LOCKED' : ''}`,
    [ids],
  );
  return rows;
}

export interface FinalMove {
  id: string;
  state: FinalState;
  exitStatus: number | null;
  reason: string | null;
  outputs: Record<string, string> | null;
}

/** Moves live jobs to their final state in the history, in one statement. */
export async function moveToHistory(tx: Queryable, moves: readonly FinalMove[]): Promise<JobRow[]> {
  if (moves.length === 0) return [];
  const { rows } = await tx.query<JobRow>(
    `WITH f AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[]) AS f(id, state, exit_status, reason, outputs)),
     moved AS (
       DELETE FROM jobs j USING f WHERE j.id = f.id
       RETURNING j.*, f.state AS final_state, f.exit_status AS final_exit, f.reason AS final_reason, f.outputs AS final_outputs)
     INSERT INTO job_history AS j
     SELECT ${copyColumns('m', {
       state: 'm.final_state',
       lease_token: 'NULL',
       lease_expires_at: 'NULL',
       finished_at: 'now()',
       exit_status: 'm.final_exit',
       failure_reason: 'm.final_reason',
       outputs: 'm.final_outputs::jsonb',
       updated_at: 'now()',
     })}
       FROM moved m
     RETURNING j.*, ${WITH_POOL_NAME}`,
    [
      moves.map((m) => m.id),
      moves.map((m) => m.state),
      moves.map((m) => m.exitStatus),
      moves.map((m) => m.reason),
      moves.map((m) => (m.outputs ? JSON.stringify(m.outputs) : null)),
    ],
  );
  return rows;
}

export interface RetryMove {
  id: string;
  delaySeconds: number;
  lastFailure: { reason: string; exit_status: number | null; at: string };
}

/** Puts failed attempts back to wait for their backoff (state `scheduled`). */
export async function scheduleRetries(tx: Queryable, retries: readonly RetryMove[]): Promise<JobRow[]> {
  if (retries.length === 0) return [];
  const { rows } = await tx.query<JobRow>(
    `UPDATE jobs j
        SET state = 'scheduled', run_at = now() + make_interval(secs => f.delay), queued_at = NULL,
            agent_id = NULL, lease_token = NULL, lease_expires_at = NULL, claimed_at = NULL, started_at = NULL,
            cancel_requested_at = NULL, last_failure = f.failure::jsonb, updated_at = now()
       FROM unnest($1::uuid[], $2::float8[], $3::text[]) AS f(id, delay, failure)
      WHERE j.id = f.id
     RETURNING j.*, ${WITH_POOL_NAME}`,
    [retries.map((r) => r.id), retries.map((r) => r.delaySeconds), retries.map((r) => JSON.stringify(r.lastFailure))],
  );
  return rows;
}

export interface AttemptRecord {
  job: JobRow;
  outcome: string;
  exitStatus: number | null;
  reason: string | null;
}

export async function insertAttempts(tx: Queryable, attempts: readonly AttemptRecord[]): Promise<void> {
  if (attempts.length === 0) return;
  await tx.query(
    `INSERT INTO job_attempts (job_id, attempt, org_id, agent_id, pool_id, claimed_at, started_at, finished_at,
                               outcome, exit_status, reason)
     SELECT id, attempt, org_id, agent_id, pool_id, claimed_at, started_at, now(), outcome, exit_status, reason
       FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::uuid[], $5::uuid[], $6::timestamptz[], $7::timestamptz[],
                   $8::text[], $9::int[], $10::text[])
            AS a(id, attempt, org_id, agent_id, pool_id, claimed_at, started_at, outcome, exit_status, reason)
     ON CONFLICT (job_id, attempt) DO NOTHING`,
    [
      attempts.map((a) => a.job.id),
      attempts.map((a) => a.job.attempt),
      attempts.map((a) => a.job.org_id),
      attempts.map((a) => a.job.agent_id),
      attempts.map((a) => a.job.pool_id),
      attempts.map((a) => a.job.claimed_at),
      attempts.map((a) => a.job.started_at),
      attempts.map((a) => a.outcome),
      attempts.map((a) => a.exitStatus),
      attempts.map((a) => a.reason),
    ],
  );
}

export async function markCancelRequested(tx: Queryable, id: string): Promise<JobRow> {
  const { rows } = await tx.query<JobRow>(
    `UPDATE jobs j SET cancel_requested_at = coalesce(cancel_requested_at, now()), updated_at = now()
      WHERE id = $1 RETURNING j.*, ${WITH_POOL_NAME}`,
    [id],
  );
  return rows[0]!;
}

export async function setPriority(tx: Queryable, id: string, priority: number): Promise<JobRow> {
  const { rows } = await tx.query<JobRow>(
    `UPDATE jobs j SET priority = $2, updated_at = now() WHERE id = $1 RETURNING j.*, ${WITH_POOL_NAME}`,
    [id, priority],
  );
  return rows[0]!;
}

/** A finished job back into the live queue as new work: a fresh attempt budget, back of its priority. */
export async function moveFromHistory(
  tx: Queryable,
  orgId: string,
  id: string,
  states: readonly string[],
): Promise<JobRow | undefined> {
  const { rows } = await tx.query<JobRow>(
    `WITH moved AS (DELETE FROM job_history WHERE org_id = $1 AND id = $2 AND state = ANY($3::text[]) RETURNING *)
     INSERT INTO jobs AS j
     SELECT ${copyColumns('m', {
       seq: "nextval('job_seq')",
       state: "'queued'",
       attempts_before_redrive: 'm.attempt',
       run_at: 'now()',
       queued_at: 'now()',
       agent_id: 'NULL',
       lease_token: 'NULL',
       lease_expires_at: 'NULL',
       claimed_at: 'NULL',
       started_at: 'NULL',
       cancel_requested_at: 'NULL',
       finished_at: 'NULL',
       exit_status: 'NULL',
       failure_reason: 'NULL',
       outputs: 'NULL',
       updated_at: 'now()',
     })}
       FROM moved m
     RETURNING j.*, ${WITH_POOL_NAME}`,
    [orgId, id, states],
  );
  return rows[0];
}

/** Scheduled jobs whose time has come become claimable. */
export async function promoteDueJobs(db: Queryable, limit: number, orgId?: string): Promise<JobRow[]> {
  const { rows } = await db.query<JobRow>(
    `UPDATE jobs j SET state = 'queued', queued_at = now(), updated_at = now()
       FROM (SELECT id FROM jobs WHERE state = 'scheduled' AND run_at <= now() AND ($2::uuid IS NULL OR org_id = $2)
              ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
      WHERE j.id = due.id
     RETURNING j.*, ${WITH_POOL_NAME}`,
    [limit, orgId ?? null],
  );
  return rows;
}

/** Leased jobs the reaper must end, locked: leases lapsed, timeouts passed, cancels ignored. */
export async function lockOverdueJobs(
  tx: Queryable,
  opts: { timeoutGraceSeconds: number; cancelGraceSeconds: number; limit: number; orgId?: string },
): Promise<JobRow[]> {
  const { rows } = await tx.query<JobRow>(
    `SELECT j.*, ${WITH_POOL_NAME} FROM jobs j
      WHERE j.state IN ('claimed', 'running') AND ($4::uuid IS NULL OR j.org_id = $4)
        AND (j.lease_expires_at < now()
             OR (j.state = 'running' AND j.started_at + make_interval(secs => j.timeout_seconds + $1) < now())
             OR j.cancel_requested_at + make_interval(secs => $2) < now())
      ORDER BY j.lease_expires_at LIMIT $3
      FOR UPDATE OF j SKIP LOCKED`,
    [opts.timeoutGraceSeconds, opts.cancelGraceSeconds, opts.limit, opts.orgId ?? null],
  );
  return rows;
}

export async function lockLeasedJobsOfAgents(tx: Queryable, agentIds: readonly string[]): Promise<JobRow[]> {
  if (agentIds.length === 0) return [];
  const { rows } = await tx.query<JobRow>(
    `SELECT j.*, ${WITH_POOL_NAME} FROM jobs j
      WHERE j.agent_id = ANY($1::uuid[]) AND j.state IN ('claimed', 'running')
      FOR UPDATE OF j`,
    [agentIds],
  );
  return rows;
}

/** Retention: finished jobs, attempts, keys and statistics older than the cutoff. */
export async function pruneHistory(db: Queryable, cutoff: Date, limit: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `WITH jobs_gone AS (
       DELETE FROM job_history WHERE id IN (SELECT id FROM job_history WHERE finished_at < $1 LIMIT $2) RETURNING 1),
     attempts_gone AS (
       DELETE FROM job_attempts WHERE (job_id, attempt) IN
         (SELECT job_id, attempt FROM job_attempts WHERE finished_at < $1 LIMIT $2) RETURNING 1),
     keys_gone AS (
       DELETE FROM job_idempotency_keys WHERE (org_id, key) IN
         (SELECT org_id, key FROM job_idempotency_keys WHERE created_at < $1 LIMIT $2) RETURNING 1),
     stats_gone AS (DELETE FROM queue_stats WHERE minute < $1 RETURNING 1)
     SELECT (SELECT count(*) FROM jobs_gone)::int + (SELECT count(*) FROM attempts_gone)::int AS n`,
    [cutoff, limit],
  );
  return rows[0]?.n ?? 0;
}
