import type { Queryable } from '../../platform/db/index.js';

export interface PoolRow {
  id: string;
  org_id: string;
  name: string;
  description: string;
  desired_capacity: number;
  registration_token_prefix: string;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'id, org_id, name, description, desired_capacity, registration_token_prefix, created_at, updated_at';

export async function insertPool(
  db: Queryable,
  p: { orgId: string; name: string; description: string; desiredCapacity: number; tokenHash: Buffer; tokenPrefix: string },
): Promise<PoolRow> {
  const { rows } = await db.query<PoolRow>(
    `INSERT INTO pools (org_id, name, description, desired_capacity, registration_token_hash, registration_token_prefix)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
    [p.orgId, p.name, p.description, p.desiredCapacity, p.tokenHash, p.tokenPrefix],
  );
  return rows[0]!;
}

export async function findPoolByName(
  db: Queryable,
  orgId: string,
  name: string,
  opts: { forUpdate?: boolean } = {},
): Promise<PoolRow | undefined> {
  const { rows } = await db.query<PoolRow>(
    `SELECT ${COLUMNS} FROM pools WHERE org_id = $1 AND name = $2 AND deleted_at IS NULL${opts.forUpdate ? ' FOR UPDATE' : ''}`,
    [orgId, name],
  );
  return rows[0];
}

export async function findPoolsById(db: Queryable, orgId: string, ids: readonly string[]): Promise<PoolRow[]> {
  const { rows } = await db.query<PoolRow>(`SELECT ${COLUMNS} FROM pools WHERE org_id = $1 AND id = ANY($2::uuid[])`, [
    orgId,
    ids,
  ]);
  return rows;
}

export async function listPools(db: Queryable, orgId: string, after: string | undefined, limit: number): Promise<PoolRow[]> {
  const { rows } = await db.query<PoolRow>(
    `SELECT ${COLUMNS} FROM pools
      WHERE org_id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR name > $2)
      ORDER BY name LIMIT $3`,
    [orgId, after ?? null, limit],
  );
  return rows;
}

export async function updatePool(
  db: Queryable,
  orgId: string,
  id: string,
  p: { name: string; description: string; desiredCapacity: number },
): Promise<PoolRow> {
  const { rows } = await db.query<PoolRow>(
    `UPDATE pools SET name = $3, description = $4, desired_capacity = $5, updated_at = now()
      WHERE org_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
    [orgId, id, p.name, p.description, p.desiredCapacity],
  );
  return rows[0]!;
}

export async function replaceRegistrationToken(
  db: Queryable,
  orgId: string,
  id: string,
  token: { hash: Buffer; prefix: string },
): Promise<PoolRow> {
  const { rows } = await db.query<PoolRow>(
    `UPDATE pools SET registration_token_hash = $3, registration_token_prefix = $4, updated_at = now()
      WHERE org_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
    [orgId, id, token.hash, token.prefix],
  );
  return rows[0]!;
}

export async function softDeletePool(db: Queryable, orgId: string, id: string): Promise<void> {
  await db.query('UPDATE pools SET deleted_at = now(), updated_at = now() WHERE org_id = $1 AND id = $2', [orgId, id]);
}

/** What keeps a pool from being deleted: agents that are not stopped, jobs not finished. */
export async function poolUsage(db: Queryable, poolId: string): Promise<{ agents: number; jobs: number }> {
  const { rows } = await db.query<{ agents: number; jobs: number }>(
    `SELECT (SELECT count(*)::int FROM agents WHERE pool_id = $1 AND status <> 'stopped') AS agents,
            (SELECT count(*)::int FROM jobs WHERE pool_id = $1) AS jobs`,
    [poolId],
  );
  return rows[0]!;
}

export interface RegistrationRow {
  pool_id: string;
  org_id: string;
  name: string;
}

export async function findPoolByRegistrationHash(db: Queryable, hash: Buffer): Promise<RegistrationRow | undefined> {
  const { rows } = await db.query<RegistrationRow>(
    'SELECT id AS pool_id, org_id, name FROM pools WHERE registration_token_hash = $1 AND deleted_at IS NULL',
    [hash],
  );
  return rows[0];
}

export interface PoolFigures {
  pool_id: string;
  agents_by_status: Record<string, number>;
  /** Sum of max_concurrency over agents that take work (active, not lost or paused). */
  slots: number;
  active_agents: number;
  queued_by_priority: number[];
  scheduled: number;
  leased: number;
  oldest_queued_at: Date | null;
}

/**
 * Live figures for a set of pools in two grouped scans: agents by status (busy/idle
 * derived from leased jobs) and the live queue by state and priority. Both tables hold
 * only what is alive, so this stays cheap however long the history is.
 */
export async function poolFigures(db: Queryable, poolIds: readonly string[]): Promise<Map<string, PoolFigures>> {
  const out = new Map<string, PoolFigures>();
  for (const id of poolIds) {
    out.set(id, {
      pool_id: id,
      agents_by_status: {},
      slots: 0,
      active_agents: 0,
      queued_by_priority: [0, 0, 0, 0],
      scheduled: 0,
      leased: 0,
      oldest_queued_at: null,
    });
  }
  if (poolIds.length === 0) return out;
  const [agents, jobs] = await Promise.all([
    db.query<{ pool_id: string; status: string; agents: number; slots: number }>(
      `SELECT a.pool_id,
              CASE WHEN a.status <> 'active' THEN a.status
                   WHEN EXISTS (SELECT 1 FROM jobs j WHERE j.agent_id = a.id) THEN 'busy'
                   ELSE 'idle' END AS status,
              count(*)::int AS agents, sum(a.max_concurrency)::int AS slots
         FROM agents a
        WHERE a.pool_id = ANY($1::uuid[]) AND a.status <> 'stopped'
        GROUP BY 1, 2`,
      [poolIds],
    ),
    db.query<{ pool_id: string; state: string; priority: number; jobs: number; oldest: Date | null }>(
      `SELECT pool_id, state, priority, count(*)::int AS jobs, min(queued_at) AS oldest
         FROM jobs WHERE pool_id = ANY($1::uuid[])
        GROUP BY 1, 2, 3`,
      [poolIds],
    ),
  ]);
  for (const row of agents.rows) {
    const f = out.get(row.pool_id)!;
    f.agents_by_status[row.status] = row.agents;
    if (row.status === 'busy' || row.status === 'idle') {
      f.slots += row.slots;
      f.active_agents += row.agents;
    }
  }
  for (const row of jobs.rows) {
    const f = out.get(row.pool_id)!;
    if (row.state === 'queued') {
      f.queued_by_priority[row.priority] = (f.queued_by_priority[row.priority] ?? 0) + row.jobs;
      if (row.oldest && (!f.oldest_queued_at || row.oldest < f.oldest_queued_at)) f.oldest_queued_at = row.oldest;
    } else if (row.state === 'scheduled') f.scheduled += row.jobs;
    else if (row.state === 'claimed' || row.state === 'running') f.leased += row.jobs;
  }
  return out;
}
