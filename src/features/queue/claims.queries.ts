// The agent's hot path in hand-written SQL: the claim, successful completions, and both in
// one statement (an agent handing in its finished jobs as it asks for the next). Each
// statement records its own audit events (auditCtes). The pieces are CTE fragments with
// their parameters named by the caller, so the combined statement is the same SQL as the
// two on their own, not a copy of it.
import type { Queryable } from '../../platform/db/index.js';
import { auditCtes, auditParams, type AuditActor } from '../audit/audit.queries.js';
import { copyColumns, leaseFence, WITH_POOL_NAME } from './queue.columns.js';
import type { JobRow } from './queue.model.js';

interface ClaimParams {
  agent: string;
  max: string;
  leaseSeconds: string;
  start: string;
  /** The first of the five audit parameters (auditParams). */
  audit: number;
  /**
   * Jobs handed in by the same statement (the `moved` CTE of completionCtes): the snapshot
   * still counts them as held, so their slots are added back; and unless all `reports` of
   * them matched, nothing is claimed (the caller then takes the rest the slow way).
   */
  handedIn?: { reports: string };
}

/**
 * The claim: the agent must be active; it gets at most its free slots; the best-priority,
 * oldest claimable jobs of its pool whose required tags it has are locked (skipping rows
 * other claimers hold) and leased to it. With `start`, they go straight to `running`
 * (claimed and started in one transition, one audit event). Leaves the rows in `claimed`.
 */
function claimCtes(p: ClaimParams): string {
  const handedIn = p.handedIn ? '(SELECT count(*)::int FROM moved)' : '0';
  return `me AS (
       SELECT id, pool_id, tags, max_concurrency FROM agents WHERE id = ${p.agent} AND status = 'active'),
     -- The agent's jobs in hand, counted up to what could matter. The LIMIT makes this a plain
     -- index scan: a bitmap scan revisited the heap for every job the agent finished since the
     -- last vacuum (finished jobs leave the table), while an index scan marks those entries
     -- dead the first time and skips them after.
     room AS (
       SELECT greatest(0, least(${p.max}::int, me.max_concurrency + ${handedIn} - (
                SELECT count(*)::int FROM (
                  SELECT FROM jobs l WHERE l.agent_id = ${p.agent} LIMIT me.max_concurrency + ${handedIn}) held))) AS free
         FROM me
        ${p.handedIn ? `WHERE ${handedIn} = ${p.handedIn.reports}` : ''}),
     -- The pool and tags as scalar subqueries (InitPlans), not a join: with pool_id equal to
     -- a parameter the planner walks jobs_claim_idx in (priority, seq) order and stops after
     -- LIMIT rows; joined to me, it read and sorted every queued job of the pool per claim.
     picked AS (
       SELECT j.id FROM jobs j
        WHERE j.state = 'queued' AND j.pool_id = (SELECT pool_id FROM me) AND j.required_tags <@ (SELECT tags FROM me)
        ORDER BY j.priority, j.seq
        LIMIT (SELECT coalesce(max(free), 0) FROM room)
        FOR UPDATE OF j SKIP LOCKED),
     claimed AS (
       UPDATE jobs j
          SET state = CASE WHEN ${p.start} THEN 'running' ELSE 'claimed' END, agent_id = ${p.agent},
              lease_token = gen_random_uuid(), lease_expires_at = now() + make_interval(secs => ${p.leaseSeconds}),
              claimed_at = now(), started_at = CASE WHEN ${p.start} THEN now() END, attempt = j.attempt + 1,
              updated_at = now()
         FROM picked WHERE j.id = picked.id
       RETURNING j.*),
     ${auditCtes({
       source: 'claimed',
       action: "'job.claimed'",
       resourceType: 'job',
       payload: `jsonb_build_object('attempt', s.attempt, 'agent_id', s.agent_id) || CASE WHEN ${p.start} THEN '{"started": true}'::jsonb ELSE '{}'::jsonb END`,
       firstParam: p.audit,
     })}`;
}

interface CompletionParams {
  ids: string;
  leases: string;
  outputs: string;
  agent: string;
  audit: number;
  /** Only jobs that belong to no run (nothing else has to commit with their end). */
  outsideRuns?: boolean;
}

/**
 * Successful completions, fenced by the lease: each job moves to the history as `completed`
 * with its outputs, its attempt is recorded, and so is its audit event. Leaves the jobs as
 * they were in `moved` and as they are now in `completed`.
 */
function completionCtes(p: CompletionParams): string {
  return `f AS (SELECT * FROM unnest(${p.ids}::uuid[], ${p.leases}::uuid[], ${p.outputs}::text[]) AS f(id, lease, outputs)),
     moved AS (
       DELETE FROM jobs j USING f
        WHERE j.id = f.id AND j.lease_token = f.lease AND ${leaseFence(p.agent, "'claimed', 'running'")}
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
       firstParam: p.audit,
     })}`;
}

export interface Completion {
  id: string;
  leaseToken: string;
  outputs: Record<string, string> | null;
}

const completionArrays = (items: readonly Completion[]) => [
  items.map((i) => i.id),
  items.map((i) => i.leaseToken),
  items.map((i) => (i.outputs ? JSON.stringify(i.outputs) : null)),
];

const claimOrder = (a: JobRow, b: JobRow) => a.priority - b.priority || a.seq - b.seq;

// The statements' text, built once: a string built per call would also be hashed anew per
// call when the driver looks up its prepared statement.
const CLAIM_SQL = `WITH ${claimCtes({ agent: '$1', max: '$2', leaseSeconds: '$3', start: '$4', audit: 5 })}
     SELECT j.*, ${WITH_POOL_NAME} FROM claimed j`;
const completeSql = (outsideRuns: boolean) =>
  `WITH ${completionCtes({ ids: '$1', leases: '$2', outputs: '$3', agent: '$4', audit: 5, outsideRuns })}
     SELECT j.*, ${WITH_POOL_NAME} FROM completed j`;
const COMPLETE_SQL = { anyJob: completeSql(false), outsideRuns: completeSql(true) };
const COMPLETE_AND_CLAIM_SQL = `WITH ${completionCtes({ ids: '$10', leases: '$11', outputs: '$12', agent: '$1', audit: 5, outsideRuns: true })},
     ${claimCtes({ agent: '$1', max: '$2', leaseSeconds: '$3', start: '$4', audit: 5, handedIn: { reports: '$13' } })}
     SELECT 'completed' AS handover, j.*, ${WITH_POOL_NAME} FROM completed j
     UNION ALL
     SELECT 'claimed' AS handover, j.*, ${WITH_POOL_NAME} FROM claimed j`;

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

/**
 * Completes the jobs an agent hands in (those outside runs) and claims its next ones, in
 * one autocommit statement: one round trip and one commit where a transaction took four
 * round trips (BEGIN, the completions, the claim, COMMIT). It claims only if every
 * completion applied; otherwise `claimed` is empty and the caller handles the rest (refusals,
 * run steps) and claims the usual way.
 */
export async function completeAndClaim(
  db: Queryable,
  actor: AuditActor,
  agentId: string,
  items: readonly Completion[],
  claim: { max: number; leaseSeconds: number; start: boolean },
): Promise<{ completed: JobRow[]; claimed: JobRow[] }> {
  const { rows } = await db.query<JobRow & { handover: 'completed' | 'claimed' }>(COMPLETE_AND_CLAIM_SQL, [
    agentId,
    claim.max,
    claim.leaseSeconds,
    claim.start,
    ...auditParams(actor),
    ...completionArrays(items),
    items.length,
  ]);
  const pick = (side: string) => rows.filter((r) => r.handover === side).map(({ handover: _side, ...job }) => job);
  return { completed: pick('completed'), claimed: pick('claimed').sort(claimOrder) };
}
