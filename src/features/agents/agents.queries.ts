import type { Queryable } from '../../platform/db/index.js';

export type AgentStatus = 'active' | 'paused' | 'draining' | 'lost' | 'stopped';

export interface AgentRow {
  id: string;
  org_id: string;
  pool_id: string;
  pool_name: string;
  name: string;
  hostname: string;
  version: string;
  os: string;
  tags: string[];
  max_concurrency: number;
  status: AgentStatus;
  load: Record<string, unknown>;
  registered_at: Date;
  last_heartbeat_at: Date;
  stopped_at: Date | null;
  /** Jobs leased to it right now (claimed or running). */
  leased_jobs: number;
}

const SELECT_AGENT = `
  SELECT a.id, a.org_id, a.pool_id, p.name AS pool_name, a.name, a.hostname, a.version, a.os, a.tags,
         a.max_concurrency, a.status, a.load, a.registered_at, a.last_heartbeat_at, a.stopped_at,
         (SELECT count(*)::int FROM jobs j WHERE j.agent_id = a.id) AS leased_jobs
    FROM agents a JOIN pools p ON p.id = a.pool_id`;

export async function insertAgent(
  db: Queryable,
  a: {
    orgId: string;
    poolId: string;
    name: string;
    hostname: string;
    version: string;
    os: string;
    tags: string[];
    maxConcurrency: number;
    tokenHash: Buffer;
  },
): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO agents (org_id, pool_id, name, hostname, version, os, tags, max_concurrency, token_hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
    [a.orgId, a.poolId, a.name, a.hostname, a.version, a.os, a.tags, a.maxConcurrency, a.tokenHash],
  );
  return rows[0]!.id;
}

export async function findAgent(db: Queryable, orgId: string, id: string): Promise<AgentRow | undefined> {
  const { rows } = await db.query<AgentRow>(`${SELECT_AGENT} WHERE a.org_id = $1 AND a.id = $2`, [orgId, id]);
  return rows[0];
}

export interface AgentListFilter {
  orgId: string;
  poolId?: string;
  statuses?: readonly AgentStatus[];
  /** Only agents heard from after this time. */
  heardSince?: Date;
  includeStopped: boolean;
  after?: { registeredAt: string; id: string };
  limit: number;
}

export async function listAgents(db: Queryable, f: AgentListFilter): Promise<AgentRow[]> {
  const { rows } = await db.query<AgentRow>(
    `${SELECT_AGENT}
      WHERE a.org_id = $1
        AND ($2::uuid IS NULL OR a.pool_id = $2)
        AND ($3::text[] IS NULL OR a.status = ANY($3))
        AND ($4::timestamptz IS NULL OR a.last_heartbeat_at > $4)
        AND ($5 OR a.status <> 'stopped')
        AND ($6::timestamptz IS NULL OR (a.registered_at, a.id) > ($6, $7::uuid))
      ORDER BY a.registered_at, a.id LIMIT $8`,
    [
      f.orgId,
      f.poolId ?? null,
      f.statuses ?? null,
      f.heardSince ?? null,
      f.includeStopped,
      f.after?.registeredAt ?? null,
      f.after?.id ?? null,
      f.limit,
    ],
  );
  return rows;
}

export interface AgentPrincipalRow {
  id: string;
  org_id: string;
  pool_id: string;
  name: string;
  status: AgentStatus;
}

export async function findAgentByTokenHash(db: Queryable, hash: Buffer): Promise<AgentPrincipalRow | undefined> {
  const { rows } = await db.query<AgentPrincipalRow>(
    'SELECT id, org_id, pool_id, name, status FROM agents WHERE token_hash = $1',
    [hash],
  );
  return rows[0];
}

/** Sets a new status; returns the previous one, or undefined if the agent is not there. */
export async function setAgentStatus(
  db: Queryable,
  orgId: string,
  id: string,
  status: AgentStatus,
): Promise<{ previous: AgentStatus } | undefined> {
  const { rows } = await db.query<{ previous: AgentStatus }>(
    `UPDATE agents a SET status = $3, stopped_at = CASE WHEN $3 = 'stopped' THEN now() ELSE a.stopped_at END
       FROM (SELECT id, status FROM agents WHERE org_id = $1 AND id = $2 FOR UPDATE) old
      WHERE a.id = old.id
      RETURNING old.status AS previous`,
    [orgId, id, status],
  );
  return rows[0];
}

export async function insertStatusEvents(
  db: Queryable,
  events: readonly { agentId: string; orgId: string; from: string | null; to: string; reason: string }[],
): Promise<void> {
  if (events.length === 0) return;
  await db.query(
    `INSERT INTO agent_status_events (agent_id, org_id, from_status, to_status, reason)
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[])`,
    [
      events.map((e) => e.agentId),
      events.map((e) => e.orgId),
      events.map((e) => e.from),
      events.map((e) => e.to),
      events.map((e) => e.reason),
    ],
  );
}

/**
 * Records a heartbeat. A lost agent that speaks again is active again (its old leases are
 * gone; the heartbeat answer tells it which jobs to abandon). Returns the status before.
 */
export async function recordHeartbeat(
  db: Queryable,
  agentId: string,
  load: Record<string, unknown>,
): Promise<{ previous: AgentStatus; status: AgentStatus } | undefined> {
  const { rows } = await db.query<{ previous: AgentStatus; status: AgentStatus }>(
    `UPDATE agents a
        SET last_heartbeat_at = now(), load = $2,
            status = CASE WHEN old.status = 'lost' THEN 'active' ELSE old.status END
       FROM (SELECT id, status FROM agents WHERE id = $1 FOR UPDATE) old
      WHERE a.id = old.id AND old.status <> 'stopped'
      RETURNING old.status AS previous, a.status`,
    [agentId, JSON.stringify(load)],
  );
  return rows[0];
}

export interface LostAgentRow {
  id: string;
  org_id: string;
  pool_id: string;
  name: string;
  previous: AgentStatus;
}

/** Marks agents silent since `cutoff` as lost, skipping rows another replica holds. */
export async function markSilentAgentsLost(db: Queryable, cutoff: Date, limit: number, orgId?: string): Promise<LostAgentRow[]> {
  const { rows } = await db.query<LostAgentRow>(
    `UPDATE agents a SET status = 'lost'
       FROM (SELECT id, status FROM agents
              WHERE status IN ('active', 'paused', 'draining') AND last_heartbeat_at < $1
                AND ($3::uuid IS NULL OR org_id = $3)
              ORDER BY last_heartbeat_at LIMIT $2 FOR UPDATE SKIP LOCKED) old
      WHERE a.id = old.id
      RETURNING a.id, a.org_id, a.pool_id, a.name, old.status AS previous`,
    [cutoff, limit, orgId ?? null],
  );
  return rows;
}

export interface StatusEventRow {
  id: number;
  from_status: string | null;
  to_status: string;
  reason: string;
  at: Date;
}

export async function listStatusEvents(
  db: Queryable,
  orgId: string,
  agentId: string,
  beforeId: number | undefined,
  limit: number,
): Promise<StatusEventRow[]> {
  const { rows } = await db.query<StatusEventRow>(
    `SELECT id, from_status, to_status, reason, at FROM agent_status_events
      WHERE org_id = $1 AND agent_id = $2 AND ($3::bigint IS NULL OR id < $3)
      ORDER BY id DESC LIMIT $4`,
    [orgId, agentId, beforeId ?? null, limit],
  );
  return rows;
}

export interface ActivityRow {
  job_id: string;
  job_name: string;
  attempt: number;
  claimed_at: Date | null;
  started_at: Date | null;
  finished_at: Date;
  outcome: string;
  exit_status: number | null;
  reason: string | null;
}

export async function listActivity(
  db: Queryable,
  orgId: string,
  agentId: string,
  before: { finishedAt: string; jobId: string } | undefined,
  limit: number,
): Promise<ActivityRow[]> {
  const { rows } = await db.query<ActivityRow>(
    `SELECT t.job_id, coalesce(j.name, '') AS job_name, t.attempt, t.claimed_at, t.started_at, t.finished_at,
            t.outcome, t.exit_status, t.reason
       FROM job_attempts t
       LEFT JOIN LATERAL (SELECT name FROM all_jobs WHERE id = t.job_id LIMIT 1) j ON true
      WHERE t.org_id = $1 AND t.agent_id = $2
        AND ($3::timestamptz IS NULL OR (t.finished_at, t.job_id) < ($3, $4::uuid))
      ORDER BY t.finished_at DESC, t.job_id DESC LIMIT $5`,
    [orgId, agentId, before?.finishedAt ?? null, before?.jobId ?? null, limit],
  );
  return rows;
}

export interface AgentMetricsRow {
  attempts: number;
  completed: number;
  failed: number;
  busy_ms: number;
  first_at: Date | null;
  last_at: Date | null;
}

export async function agentMetrics(db: Queryable, orgId: string, agentId: string, since: Date): Promise<AgentMetricsRow> {
  const { rows } = await db.query<AgentMetricsRow>(
    `SELECT count(*)::int AS attempts,
            count(*) FILTER (WHERE outcome = 'completed')::int AS completed,
            count(*) FILTER (WHERE outcome NOT IN ('completed', 'canceled'))::int AS failed,
            coalesce(sum(extract(epoch FROM finished_at - coalesce(started_at, claimed_at, finished_at)) * 1000), 0)::float8
              AS busy_ms,
            min(finished_at) AS first_at, max(finished_at) AS last_at
       FROM job_attempts WHERE org_id = $1 AND agent_id = $2 AND finished_at >= $3`,
    [orgId, agentId, since],
  );
  return rows[0]!;
}

/** What a claim needs to park a long-poll: is the agent taking work, in which pool, with which tags. */
export async function findAgentWork(
  db: Queryable,
  id: string,
): Promise<{ status: AgentStatus; pool_id: string; tags: string[] } | undefined> {
  const { rows } = await db.query<{ status: AgentStatus; pool_id: string; tags: string[] }>(
    'SELECT status, pool_id, tags FROM agents WHERE id = $1',
    [id],
  );
  return rows[0];
}
