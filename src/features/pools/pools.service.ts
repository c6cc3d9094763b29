import type { AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { AppDeps } from '../../platform/deps.js';
import { ConflictError, NotFoundError, isUniqueViolation } from '../../platform/errors.js';
import { decodeCursor, encodeCursor, iso } from '../../platform/http/schemas.js';
import { recordAudit } from '../audit/audit.record.js';
import { AUTH_TOPIC } from '../auth/authenticate.js';
import { REGISTRATION_TOKEN_PREFIX, newOpaqueToken } from '../auth/tokens.js';
import { PRIORITIES } from '../queue/queue.model.js';
import {
  findPoolByName,
  insertPool,
  listPools,
  poolFigures,
  poolUsage,
  replaceRegistrationToken,
  softDeletePool,
  updatePool,
  type PoolFigures,
  type PoolRow,
} from './pools.queries.js';

type Deps = Pick<AppDeps, 'db' | 'bus'>;

export function presentPool(p: PoolRow) {
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    desired_capacity: p.desired_capacity,
    registration_token_prefix: p.registration_token_prefix,
    created_at: iso(p.created_at),
    updated_at: iso(p.updated_at),
  };
}

/**
 * Live figures and the scaling signal. Slots are agent concurrency; the pool needs enough
 * slots for what waits and what runs. `agents_needed` is how many more agents (of the
 * pool's average concurrency) would let every queued job start now — what an autoscaler
 * should add; at least what `desired_capacity` asks for.
 */
export function presentFigures(f: PoolFigures, desiredCapacity: number) {
  const queued = f.queued_by_priority.reduce((a, b) => a + b, 0);
  const perAgent = f.active_agents > 0 ? f.slots / f.active_agents : 1;
  const missingSlots = Math.max(0, queued + f.leased - f.slots);
  const agentsNeeded = Math.max(Math.ceil(missingSlots / perAgent), desiredCapacity - f.active_agents, 0);
  return {
    agents: f.agents_by_status,
    active_agents: f.active_agents,
    slots: f.slots,
    queued,
    queued_by_priority: Object.fromEntries(PRIORITIES.map((p, i) => [p, f.queued_by_priority[i] ?? 0])),
    scheduled: f.scheduled,
    running: f.leased,
    oldest_queued_age_seconds: f.oldest_queued_at ? Math.max(0, (Date.now() - f.oldest_queued_at.getTime()) / 1000) : null,
    agents_needed: agentsNeeded,
  };
}

async function withFigures(deps: Deps, pools: PoolRow[]) {
  const figures = await poolFigures(
    deps.db,
    pools.map((p) => p.id),
  );
  return pools.map((p) => ({ ...presentPool(p), figures: presentFigures(figures.get(p.id)!, p.desired_capacity) }));
}

export async function requirePool(deps: Pick<AppDeps, 'db'>, auth: AuthContext, name: string): Promise<PoolRow> {
  const pool = await findPoolByName(deps.db, auth.orgId, name);
  if (!pool) throw new NotFoundError(`Pool "${name}"`);
  return pool;
}

function nameConflict(error: unknown, name: string): never {
  if (isUniqueViolation(error, 'pools_org_name_key')) {
    throw new ConflictError(`A pool named "${name}" already exists.`, 'pool_name_taken', { name });
  }
  throw error;
}

export interface PoolInput {
  name: string;
  description?: string;
  desired_capacity?: number;
}

/** The registration token is returned here once; only its hash is kept. */
export async function createPool(deps: Deps, auth: AuthContext, input: PoolInput) {
  const { token, hash } = newOpaqueToken(REGISTRATION_TOKEN_PREFIX);
  let pool: PoolRow;
  try {
    pool = await deps.db.transaction(async (tx) => {
      const row = await insertPool(tx, {
        orgId: auth.orgId,
        name: input.name,
        description: input.description ?? '',
        desiredCapacity: input.desired_capacity ?? 0,
        tokenHash: hash,
        tokenPrefix: token.slice(0, REGISTRATION_TOKEN_PREFIX.length + 6),
      });
      await recordAudit(tx, auth, { action: 'pool.created', resource: ['pool', row.id], after: presentPool(row) });
      return row;
    });
  } catch (error) {
    nameConflict(error, input.name);
  }
  publishOrgEvent(deps.bus, auth.orgId, 'pool.created', { pool_id: pool.id, pool: presentPool(pool) });
  return { ...presentPool(pool), registration_token: token };
}

export async function getPool(deps: Deps, auth: AuthContext, name: string) {
  const [view] = await withFigures(deps, [await requirePool(deps, auth, name)]);
  return view!;
}

export async function listPoolsPage(deps: Deps, auth: AuthContext, query: { limit?: number; cursor?: string }) {
  const limit = query.limit ?? 50;
  const after = query.cursor ? String(decodeCursor(query.cursor, 1)[0]) : undefined;
  const rows = await listPools(deps.db, auth.orgId, after, limit + 1);
  const page = rows.slice(0, limit);
  return {
    items: await withFigures(deps, page),
    next_cursor: rows.length > limit && page.length ? encodeCursor([page.at(-1)!.name]) : null,
  };
}

export async function patchPool(deps: Deps, auth: AuthContext, name: string, patch: Partial<PoolInput>, action = 'pool.updated') {
  let pool: PoolRow;
  try {
    pool = await deps.db.transaction(async (tx) => {
      const before = await findPoolByName(tx, auth.orgId, name, { forUpdate: true });
      if (!before) throw new NotFoundError(`Pool "${name}"`);
      const row = await updatePool(tx, auth.orgId, before.id, {
        name: patch.name ?? before.name,
        description: patch.description ?? before.description,
        desiredCapacity: patch.desired_capacity ?? before.desired_capacity,
      });
      await recordAudit(tx, auth, {
        action,
        resource: ['pool', row.id],
        before: presentPool(before),
        after: presentPool(row),
      });
      return row;
    });
  } catch (error) {
    nameConflict(error, patch.name ?? name);
  }
  publishOrgEvent(deps.bus, auth.orgId, 'pool.updated', { pool_id: pool.id, pool: presentPool(pool) });
  const [view] = await withFigures(deps, [pool]);
  return view!;
}

/** A new registration token; the old one stops working at once on every replica. */
export async function rotateRegistrationToken(deps: Deps, auth: AuthContext, name: string) {
  const { token, hash } = newOpaqueToken(REGISTRATION_TOKEN_PREFIX);
  const pool = await deps.db.transaction(async (tx) => {
    const before = await findPoolByName(tx, auth.orgId, name, { forUpdate: true });
    if (!before) throw new NotFoundError(`Pool "${name}"`);
    const row = await replaceRegistrationToken(tx, auth.orgId, before.id, {
      hash,
      prefix: token.slice(0, REGISTRATION_TOKEN_PREFIX.length + 6),
    });
    await recordAudit(tx, auth, { action: 'pool.token_rotated', resource: ['pool', row.id], after: presentPool(row) });
    return row;
  });
  deps.bus.publish(AUTH_TOPIC, 'pool.token_rotated', { poolId: pool.id });
  return { ...presentPool(pool), registration_token: token };
}

/** Refused while agents are registered or jobs are unfinished: nothing is orphaned silently. */
export async function deletePool(deps: Deps, auth: AuthContext, name: string): Promise<void> {
  const pool = await deps.db.transaction(async (tx) => {
    const before = await findPoolByName(tx, auth.orgId, name, { forUpdate: true });
    if (!before) throw new NotFoundError(`Pool "${name}"`);
    const usage = await poolUsage(tx, before.id);
    if (usage.agents > 0 || usage.jobs > 0) {
      throw new ConflictError(
        `Pool "${name}" still has ${usage.agents} registered agents and ${usage.jobs} unfinished jobs; deregister and drain it first.`,
        'pool_in_use',
        usage,
      );
    }
    await softDeletePool(tx, auth.orgId, before.id);
    await recordAudit(tx, auth, { action: 'pool.deleted', resource: ['pool', before.id], before: presentPool(before) });
    return before;
  });
  deps.bus.publish(AUTH_TOPIC, 'pool.deleted', { poolId: pool.id });
  publishOrgEvent(deps.bus, auth.orgId, 'pool.deleted', { pool_id: pool.id });
}
