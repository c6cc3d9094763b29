// The hand-in: agents of one pool hand in the jobs they finished (successful completions
// of jobs outside runs) and claim their next ones, several agents in one autocommit
// statement. One statement, round trip and commit serve every agent whose request arrived
// while the one before was in flight (queue.handins.ts gathers them): on a small machine
// the statement per request, more than the SQL in it, bounded the one-round-trip agents.
import type { Queryable } from '../../platform/db/index.js';
import type { AuditActor } from '../audit/audit.queries.js';
import { claimOrder, completionArrays, completionCtes, heldJobs, leaseCtes, type Completion } from './claims.queries.js';
import { WITH_POOL_NAME } from './queue.columns.js';
import type { JobRow } from './queue.model.js';

/** One agent's request: what it hands in and how many jobs it asks for. */
export interface HandIn {
  agentId: string;
  actor: AuditActor;
  completions: readonly Completion[];
  max: number;
}

export interface HandInOutcome {
  completed: JobRow[];
  claimed: JobRow[];
  /**
   * Whether the statement claimed for this agent. It does when the agent is active, every
   * completion it handed in applied, and it has the pool and tags of the first active agent
   * of the statement; otherwise the caller claims for it on its own.
   */
  claimTried: boolean;
}

// Each agent's claim, in the order the requests arrived (`ord`):
// - `room`: its free slots, as in a claim of its own. The statement's snapshot still counts
//   the jobs it hands in as held, so their slots are added back; and unless all of them
//   matched, it claims nothing (the caller then takes the rest the slow way).
// - `picked`: the best-priority, oldest claimable jobs for all of them at once, as many as
//   their free slots together. That is only right for agents that could each take any of
//   them, so the statement claims for the agents that share the pool and tags of the first
//   (`lead`); agents of one pool usually do. Pool and tags are scalar subqueries, so the
//   planner walks jobs_claim_idx in (priority, seq) order and stops after LIMIT rows.
// - `assigned`: the n-th picked job goes to the agent whose slots cover n, so the earlier
//   request gets the better jobs, exactly as if the claims had run one after another.
const HAND_IN_SQL = `WITH asks AS (
       SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
              WITH ORDINALITY AS x(agent, max, reports, actor_type, actor_id, actor_label, request_id, client_ip, ord)),
     ${completionCtes({
       ids: '$11',
       leases: '$12',
       outputs: '$13',
       agent: { each: '$14' },
       audit: { actorJoin: { sql: 'JOIN asks x ON x.agent = s.agent_id', alias: 'x' } },
       outsideRuns: true,
     })},
     me AS (
       SELECT x.agent AS id, x.ord, x.max, x.reports, a.pool_id, a.tags, a.max_concurrency
         FROM asks x JOIN agents a ON a.id = x.agent AND a.status = 'active'),
     lead AS (SELECT pool_id, tags FROM me ORDER BY ord LIMIT 1),
     room AS (
       SELECT me.id, me.ord,
              greatest(0, least(me.max, me.max_concurrency + h.handed - ${heldJobs('me.id', 'me.max_concurrency + h.handed')})) AS free
         FROM me
         JOIN lead ON lead.pool_id = me.pool_id AND lead.tags <@ me.tags AND me.tags <@ lead.tags
         CROSS JOIN LATERAL (SELECT count(*)::int AS handed FROM moved m WHERE m.agent_id = me.id) h
        WHERE h.handed = me.reports),
     slots AS (SELECT id, sum(free) OVER (ORDER BY ord) - free AS after, sum(free) OVER (ORDER BY ord) AS upto FROM room),
     picked AS (
       SELECT j.id, j.priority, j.seq FROM jobs j
        WHERE j.state = 'queued' AND j.pool_id = (SELECT pool_id FROM lead) AND j.required_tags <@ (SELECT tags FROM lead)
        ORDER BY j.priority, j.seq
        LIMIT (SELECT coalesce(sum(free), 0) FROM room)
        FOR UPDATE OF j SKIP LOCKED),
     assigned AS (
       SELECT n.id, s.id AS agent
         FROM (SELECT id, row_number() OVER (ORDER BY priority, seq) AS n FROM picked) n
         JOIN slots s ON n.n > s.after AND n.n <= s.upto),
     ${leaseCtes({
       from: 'assigned',
       agent: 'picked.agent',
       leaseSeconds: '$9',
       start: '$10',
       audit: { actorJoin: { sql: 'JOIN asks x ON x.agent = s.agent_id', alias: 'x' } },
     })}
     SELECT 'completed' AS handover, j.agent_id AS for_agent, j.*, ${WITH_POOL_NAME} FROM completed j
     UNION ALL
     SELECT 'claimed', j.agent_id, j.*, ${WITH_POOL_NAME} FROM claimed j
     UNION ALL
     -- One row per agent the statement claimed for, whether or not it got a job; the job
     -- columns are null (a join on false keeps the row shape of the branches above).
     SELECT 'tried', r.id, j.*, NULL FROM room r LEFT JOIN jobs j ON false`;

type HandInRow = JobRow & { handover: 'completed' | 'claimed' | 'tried'; for_agent: string };

/**
 * Applies the hand-ins of several agents (at most one request per agent) in one statement
 * and returns each request's outcome, in order. A completion whose lease is not current,
 * or that belongs to another agent, matches nothing.
 */
export async function handIn(
  db: Queryable,
  asks: readonly HandIn[],
  claim: { leaseSeconds: number; start: boolean },
): Promise<HandInOutcome[]> {
  if (new Set(asks.map((a) => a.agentId)).size !== asks.length) throw new Error('one hand-in per agent and statement');
  const col = <T>(pick: (a: HandIn) => T) => asks.map(pick);
  const completions = asks.flatMap((a) => a.completions);
  const { rows } = await db.query<HandInRow>(HAND_IN_SQL, [
    col((a) => a.agentId),
    col((a) => a.max),
    col((a) => a.completions.length),
    col((a) => a.actor.actor.type),
    col((a) => a.actor.actor.id),
    col((a) => a.actor.actor.label),
    col((a) => a.actor.requestId),
    col((a) => a.actor.clientIp),
    claim.leaseSeconds,
    claim.start,
    ...completionArrays(completions),
    asks.flatMap((a) => a.completions.map(() => a.agentId)),
  ]);
  const outcomes = new Map<string, HandInOutcome>(
    asks.map((a) => [a.agentId, { completed: [], claimed: [], claimTried: false }]),
  );
  // A row keeps its two tag columns: copying every job row without them cost more than they do.
  for (const row of rows) {
    const outcome = outcomes.get(row.for_agent)!;
    if (row.handover === 'tried') outcome.claimTried = true;
    else outcome[row.handover].push(row);
  }
  for (const outcome of outcomes.values()) outcome.claimed.sort(claimOrder);
  return asks.map((a) => outcomes.get(a.agentId)!);
}
