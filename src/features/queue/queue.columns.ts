// SQL pieces the queue's statements share: the shape of a job row as they copy it between
// `jobs` and `job_history` (same columns, same order), the pool name every read adds, and
// the lease fence of an agent's reports.
/** Column order of `jobs` and `job_history` (migrations/0005_queue.sql). */
export const COLUMNS = [
  'id',
  'org_id',
  'pool_id',
  'project_id',
  'run_id',
  'step_key',
  'name',
  'priority',
  'seq',
  'state',
  'required_tags',
  'payload',
  'timeout_seconds',
  'max_attempts',
  'retry',
  'attempt',
  'attempts_before_redrive',
  'created_by',
  'created_at',
  'run_at',
  'queued_at',
  'agent_id',
  'lease_token',
  'lease_expires_at',
  'claimed_at',
  'started_at',
  'cancel_requested_at',
  'last_failure',
  'finished_at',
  'exit_status',
  'failure_reason',
  'outputs',
  'updated_at',
] as const;
export type Column = (typeof COLUMNS)[number];

/** `SELECT` list copying a row from `source`, with some columns replaced by expressions. */
export function copyColumns(source: string, overrides: Partial<Record<Column, string>>): string {
  return COLUMNS.map((c) => overrides[c] ?? `${source}.${c}`).join(', ');
}

export const WITH_POOL_NAME = '(SELECT name FROM pools p WHERE p.id = j.pool_id) AS pool_name';

/**
 * The lease fence (this agent, this lease, a state that holds a lease), applied to rows the
 * statement found by primary key. Written `(…) IS TRUE` so the planner cannot use it to find
 * rows: jobs_agent_idx and jobs_lease_idx keep entries for an agent's recently finished jobs
 * until vacuum, and a generic plan that scanned them (a BitmapAnd) visited every one of
 * those dead rows on each report, several times the cost of the primary-key probe.
 */
export function leaseFence(agentParam: string, states: string): string {
  return `(j.agent_id = ${agentParam}) IS TRUE AND (j.state IN (${states})) IS TRUE`;
}
