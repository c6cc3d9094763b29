// The queue's hot write path: enqueue, start and lease renewal (the claim and successful
// completions are in claims.queries.ts). Each is one statement that also records its audit
// events (auditCtes), so an agent's call is a single round trip; batches use
// unnest/jsonb_to_recordset so 50 jobs cost one statement, not 50. Decisions taken under a
// lock (fail, retry, cancel, redrive) and the maintenance loop's statements are in
// queue.moves.queries.ts.
import type { Queryable } from '../../platform/db/index.js';
import { auditCtes, auditParams, type AuditActor } from '../audit/audit.queries.js';
import { leaseFence, WITH_POOL_NAME } from './queue.columns.js';
import type { JobRow } from './queue.model.js';

export interface NewJob {
  id: string;
  org_id: string;
  pool_id: string;
  project_id: string | null;
  run_id: string | null;
  step_key: string | null;
  name: string;
  priority: number;
  state: 'scheduled' | 'queued' | 'blocked';
  required_tags: string[];
  payload: unknown;
  timeout_seconds: number;
  max_attempts: number;
  retry: unknown;
  created_by: string;
  run_at: string;
}

/** What the audit trail keeps of a new job: everything but env values (keys only). */
const ENQUEUE_PAYLOAD = `jsonb_build_object(
  'name', s.name, 'pool_id', s.pool_id, 'priority', s.priority, 'state', s.state, 'run_at', s.run_at,
  'tags', to_jsonb(s.required_tags), 'commands', s.payload->'commands', 'artifacts', s.payload->'artifacts',
  'env_keys', (SELECT coalesce(jsonb_agg(k ORDER BY k), '[]'::jsonb) FROM jsonb_object_keys(s.payload->'env') AS k),
  'timeout_seconds', s.timeout_seconds, 'max_attempts', s.max_attempts, 'retry', s.retry,
  'run_id', s.run_id, 'step_key', s.step_key)`;

/**
 * Inserts jobs with their audit events. `requestIdPerRun`: each event's request id is
 * `run:<run_id>` of its job (as the run engine's actor names the run it acts for), so one
 * statement can queue the jobs of many runs.
 */
export async function insertJobs(
  tx: Queryable,
  actor: AuditActor,
  jobs: readonly NewJob[],
  opts: { requestIdPerRun?: boolean } = {},
): Promise<JobRow[]> {
  if (jobs.length === 0) return [];
  // `ord` keeps the batch's order, so FIFO within a priority follows the request.
  const { rows } = await tx.query<DecidedByInsert>(
    `WITH inserted AS (
       INSERT INTO jobs (id, org_id, pool_id, project_id, run_id, step_key, name, priority, state, required_tags,
                         payload, timeout_seconds, max_attempts, retry, created_by, run_at, queued_at)
       SELECT id, org_id, pool_id, project_id, run_id, step_key, name, priority, state, required_tags,
              payload, timeout_seconds, max_attempts, retry, created_by, run_at,
              CASE WHEN state = 'queued' THEN now() END
         FROM jsonb_to_recordset($1::jsonb) AS x(
              ord int, id uuid, org_id uuid, pool_id uuid, project_id uuid, run_id uuid, step_key text, name text,
              priority smallint, state text, required_tags text[], payload jsonb, timeout_seconds int,
              max_attempts int, retry jsonb, created_by text, run_at timestamptz)
        ORDER BY ord
       RETURNING *),
     ${auditCtes({
       source: 'inserted',
       action: "'job.' || s.state",
       resourceType: 'job',
       payload: ENQUEUE_PAYLOAD,
       firstParam: 2,
       ...(opts.requestIdPerRun ? { requestId: "'run:' || s.run_id::text" } : {}),
     })}
     SELECT j.id, j.seq, j.created_at, ${WITH_POOL_NAME} FROM inserted j`,
    [JSON.stringify(jobs.map((job, ord) => ({ ord, ...job }))), ...auditParams(actor)],
  );
  const sent = new Map(jobs.map((job) => [job.id, job]));
  return rows.sort((a, b) => a.seq - b.seq).map((decided) => newJobRow(sent.get(decided.id)!, decided));
}

/** What the database decides when it inserts a job; the rest of the row is what was sent. */
interface DecidedByInsert {
  id: string;
  seq: number;
  created_at: Date;
  pool_name: string;
}

/**
 * The row of a job as insertJobs stored it. The statement returns only what the database
 * decides: reading all 34 columns of every row back (500 to a batch) cost the enqueue more
 * server time than building them here. A test holds this to the row as read back.
 */
function newJobRow(job: NewJob, decided: DecidedByInsert): JobRow {
  const { created_at } = decided;
  // Every field named (no spread of `job`): one literal gives V8 one object shape, where
  // a spread plus the added fields made it build each row field by field.
  return {
    id: job.id,
    org_id: job.org_id,
    pool_id: job.pool_id,
    pool_name: decided.pool_name,
    project_id: job.project_id,
    run_id: job.run_id,
    step_key: job.step_key,
    name: job.name,
    priority: job.priority,
    seq: decided.seq,
    state: job.state,
    required_tags: job.required_tags,
    payload: job.payload as JobRow['payload'],
    timeout_seconds: job.timeout_seconds,
    max_attempts: job.max_attempts,
    retry: job.retry as JobRow['retry'],
    attempt: 0,
    attempts_before_redrive: 0,
    created_by: job.created_by,
    created_at,
    run_at: new Date(job.run_at),
    // `now()` in the statement, like created_at (both timestamptz(3)).
    queued_at: job.state === 'queued' ? created_at : null,
    agent_id: null,
    lease_token: null,
    lease_expires_at: null,
    claimed_at: null,
    started_at: null,
    cancel_requested_at: null,
    last_failure: null,
    finished_at: null,
    exit_status: null,
    failure_reason: null,
    outputs: null,
    updated_at: created_at,
  };
}

/** Claims the idempotency keys that are new; returns the keys that were taken before. */
export async function claimIdempotencyKeys(
  tx: Queryable,
  orgId: string,
  keys: readonly { key: string; jobId: string; requestHash: Buffer }[],
): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const { rows } = await tx.query<{ key: string }>(
    `INSERT INTO job_idempotency_keys (org_id, key, job_id, request_hash)
     SELECT $1, * FROM unnest($2::text[], $3::uuid[], $4::bytea[])
     ON CONFLICT (org_id, key) DO NOTHING RETURNING key`,
    [orgId, keys.map((k) => k.key), keys.map((k) => k.jobId), keys.map((k) => k.requestHash)],
  );
  const fresh = new Set(rows.map((r) => r.key));
  return new Set(keys.map((k) => k.key).filter((k) => !fresh.has(k)));
}

export async function findIdempotencyKeys(
  db: Queryable,
  orgId: string,
  keys: readonly string[],
): Promise<Map<string, { jobId: string; requestHash: Buffer }>> {
  const { rows } = await db.query<{ key: string; job_id: string; request_hash: Uint8Array }>(
    'SELECT key, job_id, request_hash FROM job_idempotency_keys WHERE org_id = $1 AND key = ANY($2::text[])',
    [orgId, keys],
  );
  return new Map(rows.map((r) => [r.key, { jobId: r.job_id, requestHash: Buffer.from(r.request_hash) }]));
}

/** claimed → running, fenced by the lease. Returns the jobs that moved. */
export async function startJobs(
  db: Queryable,
  actor: AuditActor,
  agentId: string,
  items: readonly { id: string; leaseToken: string }[],
  leaseSeconds: number,
): Promise<JobRow[]> {
  if (items.length === 0) return [];
  const { rows } = await db.query<JobRow>(
    `WITH started AS (
       UPDATE jobs j SET state = 'running', started_at = now(),
              lease_expires_at = now() + make_interval(secs => $4), updated_at = now()
         FROM unnest($2::uuid[], $3::uuid[]) AS f(id, lease)
        WHERE j.id = f.id AND j.lease_token = f.lease AND ${leaseFence('$1', "'claimed'")}
       RETURNING j.*),
     ${auditCtes({ source: 'started', action: "'job.started'", resourceType: 'job', payload: "jsonb_build_object('attempt', s.attempt)", firstParam: 5 })}
     SELECT j.*, ${WITH_POOL_NAME} FROM started j`,
    [agentId, items.map((i) => i.id), items.map((i) => i.leaseToken), leaseSeconds, ...auditParams(actor)],
  );
  return rows;
}

/** Renews the leases of the given jobs while their agent is alive. */
export async function extendLeases(
  db: Queryable,
  agentId: string,
  jobIds: readonly string[],
  leaseSeconds: number,
): Promise<{ id: string; lease_expires_at: Date; cancel_requested: boolean }[]> {
  if (jobIds.length === 0) return [];
  const { rows } = await db.query<{ id: string; lease_expires_at: Date; cancel_requested: boolean }>(
    `UPDATE jobs j SET lease_expires_at = now() + make_interval(secs => $3)
      WHERE j.id = ANY($2::uuid[]) AND ${leaseFence('$1', "'claimed', 'running'")}
     RETURNING id, lease_expires_at, cancel_requested_at IS NOT NULL AS cancel_requested`,
    [agentId, jobIds, leaseSeconds],
  );
  return rows;
}
