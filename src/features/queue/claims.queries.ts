// The agent's hot path in hand-written SQL: the claim and successful completions, each one
// statement that records its own audit events (auditCtes). The pieces are CTE fragments
// with their parameters named by the caller, so the hand-in of several agents at once
// (handins.queries.ts) is built from the same SQL, not a copy of it.
import type { Queryable } from '../../platform/db/index.js';
import { auditCtes, auditParams, type AuditActor, type AuditSource } from '../audit/audit.queries.js';
import { copyColumns, leaseFence, WITH_POOL_NAME } from './queue.columns.js';
import type { JobRow } from './queue.model.js';

interface ClaimParams {
  agent: string;
  max: string;
  leaseSeconds: string;
  start: string;
  /** The first of the five audit parameters (auditParams). */
  audit: number;
}

/**
 * The claim: the agent must be active; it gets at most its free slots; the best-priority,
 * oldest claimable jobs of its pool whose required tags it has are locked (skipping rows
 * other claimers hold) and leased to it. With `start`, they go straight to `running`
 * (claimed and started in one transition, one audit event). Leaves the rows in `claimed`.
 */
function claimCtes(p: ClaimParams): string {
  return `me AS (
       SELECT id, pool_id, tags, max_concurrency FROM agents WHERE id = ${p.agent} AND status = 'active'),
     -- The agent's free slots: its concurrency less the jobs in hand (heldJobs).
     room AS (
       SELECT greatest(0, least(${p.max}::int, me.max_concurrency - ${heldJobs(p.agent, 'me.max_concurrency')})) AS free
         FROM me),
     -- The pool and tags as scalar subqueries (InitPlans), not a join: with pool_id equal to
     -- a parameter the planner walks jobs_claim_idx in (priority, seq) order and stops after
     -- LIMIT rows; joined to me, it read and sorted every queued job of the pool per claim.
     picked AS (
       SELECT j.id FROM jobs j
        WHERE j.state = 'queued' AND j.pool_id = (SELECT pool_id FROM me) AND j.required_tags <@ (SELECT tags FROM me)
        ORDER BY j.priority, j.seq
        LIMIT (SELECT coalesce(max(free), 0) FROM room)
        FOR UPDATE OF j SKIP LOCKED),
     ${leaseCtes({ from: 'picked', agent: p.agent, leaseSeconds: p.leaseSeconds, start: p.start, audit: { firstParam: p.audit } })}`;
}

/**
 * The jobs an agent holds, counted up to `upTo` (all that could matter). The LIMIT makes
 * this a plain index scan: a bitmap scan revisited the heap for every job the agent
 * finished since the last vacuum (finished jobs leave the table), while an index scan marks
 * those entries dead the first time and skips them after.
 */
export const heldJobs = (agent: string, upTo: string) =>
  `(SELECT count(*)::int FROM (SELECT FROM jobs l WHERE l.agent_id = ${agent} LIMIT ${upTo}) held)`;

/**
 * The lease of the jobs in `from` (locked rows, by `id`) to their agent (an SQL
 * expression over `from`'s alias `picked`, or a parameter), with one `job.claimed` audit
 * event each. With `start`, they go straight to `running`. Leaves the rows in `claimed`.
 */
export function leaseCtes(p: { from: string; agent: string; leaseSeconds: string; start: string; audit: AuditSource }): string {
  return `claimed AS (
       UPDATE jobs j
          SET state = CASE WHEN ${p.start} THEN 'running' ELSE 'claimed' END, agent_id = ${p.agent},
              lease_token = gen_random_uuid(), lease_expires_at = now() + make_interval(secs => ${p.leaseSeconds}),
              claimed_at = now(), started_at = CASE WHEN ${p.start} THEN now() END, attempt = j.attempt + 1,
              updated_at = now()
         FROM ${p.from} picked WHERE j.id = picked.id
       RETURNING j.*),
     ${auditCtes({
       source: 'claimed',
       action: "'job.claimed'",
       resourceType: 'job',
       payload: `jsonb_build_object('attempt', s.attempt, 'agent_id', s.agent_id) || CASE WHEN ${p.start} THEN '{"started": true}'::jsonb ELSE '{}'::jsonb END`,
       ...p.audit,
     })}`;
}

interface CompletionParams {
  ids: string;
  leases: string;
  outputs: string;
  /** The reporting agent: one parameter, or an array parameter with each completion's own. */
  agent: { param: string } | { each: string };
  audit: AuditSource;
  /** Only jobs that belong to no run (nothing else has to commit with their end). */
  outsideRuns?: boolean;
}

/**
 * Successful completions, fenced by the lease: each job moves to the history as `completed`
 * with its outputs, its attempt is recorded, and so is its audit event. Leaves the jobs as
 * they were in `moved` and as they are now in `completed`.
 */
export function completionCtes(p: CompletionParams): string {
  const f =
    'each' in p.agent
      ? `unnest(${p.ids}::uuid[], ${p.leases}::uuid[], ${p.outputs}::text[], ${p.agent.each}::uuid[]) AS f(id, lease, outputs, agent)`
      : `unnest(${p.ids}::uuid[], ${p.leases}::uuid[], ${p.outputs}::text[]) AS f(id, lease, outputs)`;
  return `f AS (SELECT * FROM ${f}),
     moved AS (
       DELETE FROM jobs j USING f
        WHERE j.id = f.id AND j.lease_token = f.lease AND ${leaseFence('each' in p.agent ? 'f.agent' : p.agent.param, "'claimed', 'running'")}
          ${p.outsideRuns ? 'AND j.run_id IS NULL' : ''}
       RETURNING j.*, f.outputs AS final_outputs),
     completed AS (
       INSERT INTO job_history
       SELECT ${copyColumns('m', {
         state: "'completed'",
         lease_token: 'NULL',
         lease_expires_at: 'NULL',
         finished_at: 'now()',
         exit_status: '0',
         failure_reason: 'NULL',
         outputs: 'm.final_outputs::jsonb',
         updated_at: 'now()',
       })}
         FROM moved m
       RETURNING *),
     attempts AS (
       INSERT INTO job_attempts (job_id, attempt, org_id, agent_id, pool_id, claimed_at, started_at, finished_at,
                                 outcome, exit_status, reason)
       SELECT id, attempt, org_id, agent_id, pool_id, claimed_at, started_at, now(), 'completed', 0, NULL FROM moved),
     ${
       p.outsideRuns
         ? ''
         : `-- A run step's outputs reported with its completion are hand-offs for later steps,
     -- exactly as if the job had published them one by one (the pipelines' context store).
     handed AS (
       INSERT INTO run_outputs (run_id, step_key, key, org_id, value, job_id)
       SELECT c.run_id, c.step_key, o.key, c.org_id, o.value, c.id
         FROM completed c, jsonb_each_text(c.outputs) AS o(key, value)
        WHERE c.run_id IS NOT NULL AND c.step_key IS NOT NULL
       ON CONFLICT (run_id, step_key, key) DO UPDATE SET value = EXCLUDED.value, job_id = EXCLUDED.job_id),`
     }
     ${auditCtes({
       source: 'completed',
       action: "'job.completed'",
       resourceType: 'job',
       payload: "jsonb_build_object('attempt', s.attempt, 'agent_id', s.agent_id, 'exit_status', 0, 'outputs', s.outputs)",
       ...p.audit,
     })}`;
}

export interface Completion {
  id: string;
  leaseToken: string;
  outputs: Record<string, string> | null;
}

export const completionArrays = (items: readonly Completion[]) => [
  items.map((i) => i.id),
  items.map((i) => i.leaseToken),
  items.map((i) => (i.outputs ? JSON.stringify(i.outputs) : null)),
];

export const claimOrder = (a: JobRow, b: JobRow) => a.priority - b.priority || a.seq - b.seq;

// The statements' text, built once: a string built per call would also be hashed anew per
// call when the driver looks up its prepared statement.
const CLAIM_SQL = `WITH ${claimCtes({ agent: '$1', max: '$2', leaseSeconds: '$3', start: '$4', audit: 5 })}
     SELECT j.*, ${WITH_POOL_NAME} FROM claimed j`;
const completeSql = (outsideRuns: boolean) =>
  `WITH ${completionCtes({ ids: '$1', leases: '$2', outputs: '$3', agent: { param: '$4' }, audit: { firstParam: 5 }, outsideRuns })}
     SELECT j.*, ${WITH_POOL_NAME} FROM completed j`;
const COMPLETE_SQL = { anyJob: completeSql(false), outsideRuns: completeSql(true) };

/** Claims up to `max` jobs for the agent (claimCtes). */
export async function claimJobs(
  db: Queryable,
  actor: AuditActor,
  agentId: string,
  max: number,
  leaseSeconds: number,
  opts: { start?: boolean } = {},
): Promise<JobRow[]> {
  const { rows } = await db.query<JobRow>(CLAIM_SQL, [agentId, max, leaseSeconds, opts.start === true, ...auditParams(actor)]);
  return rows.sort(claimOrder);
}

/**
 * Completes jobs successfully (completionCtes). Returns the completed jobs; a report whose
 * lease is not current matches nothing.
 */
export async function completeJobs(
  db: Queryable,
  actor: AuditActor,
  agentId: string,
  items: readonly Completion[],
  opts: { outsideRuns?: boolean } = {},
): Promise<JobRow[]> {
  if (items.length === 0) return [];
  const { rows } = await db.query<JobRow>(opts.outsideRuns ? COMPLETE_SQL.outsideRuns : COMPLETE_SQL.anyJob, [
    ...completionArrays(items),
    agentId,
    ...auditParams(actor),
  ]);
  return rows;
}
