// The shape of a job row as the queue's statements copy it between \`jobs\` and
// \`job_history\` (same columns, same order), and the pool name every read adds.
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
