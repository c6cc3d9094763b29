import { can, systemContext, type AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects } from '../../platform/effects.js';
import { ForbiddenError, NotFoundError } from '../../platform/errors.js';
import { decodeCursor, encodeCursor, iso } from '../../platform/http/schemas.js';
import { recordAudit } from '../audit/audit.record.js';
import { AUTH_TOPIC } from '../auth/authenticate.js';
import { AGENT_TOKEN_PREFIX, newOpaqueToken } from '../auth/tokens.js';
import { tagsToArray, tagsToObject } from '../queue/queue.model.js';
import { endAttempts } from '../queue/queue.finish.js';
import { extendLeases } from '../queue/queue.queries.js';
import { lockLeasedJobsOfAgents } from '../queue/queue.moves.queries.js';
import { requirePool } from '../pools/pools.service.js';
import {
  findAgent,
  insertAgent,
  insertStatusEvents,
  listAgents,
  recordHeartbeat,
  setAgentStatus,
  type AgentRow,
  type AgentStatus,
} from './agents.queries.js';

type Deps = Pick<AppDeps, 'db' | 'bus' | 'config' | 'queue'>;

/** Silent this long, an agent is lost (and its jobs are retried elsewhere). */
export function lostAfterMs(config: AppDeps['config']): number {
  return config.agentHeartbeatSeconds * config.agentLostAfterMissed * 1000;
}

export function presentAgent(a: AgentRow, config: AppDeps['config']) {
  const fresh = Date.now() - a.last_heartbeat_at.getTime() < lostAfterMs(config);
  return {
    id: a.id,
    name: a.name,
    pool: a.pool_name,
    pool_id: a.pool_id,
    hostname: a.hostname,
    version: a.version,
    os: a.os,
    tags: tagsToObject(a.tags),
    max_concurrency: a.max_concurrency,
    // idle and busy are the same stored status, told apart by leased jobs.
    status: a.status === 'active' ? (a.leased_jobs > 0 ? 'busy' : 'idle') : a.status,
    healthy: fresh && ['active', 'paused', 'draining'].includes(a.status),
    running_jobs: a.leased_jobs,
    load: a.load,
    registered_at: iso(a.registered_at),
    last_heartbeat_at: iso(a.last_heartbeat_at),
    stopped_at: iso(a.stopped_at),
  };
}

async function requireAgent(deps: Pick<AppDeps, 'db'>, auth: AuthContext, id: string): Promise<AgentRow> {
  const agent = await findAgent(deps.db, auth.orgId, id);
  // An agent sees only itself; users see their organization's agents.
  if (!agent || (auth.agentId && auth.agentId !== id)) throw new NotFoundError('Agent');
  return agent;
}

export interface RegisterInput {
  name: string;
  hostname?: string;
  version?: string;
  os?: string;
  tags?: Record<string, string>;
  max_concurrency?: number;
}

/** Called with a pool's registration token; answers the agent's own token, once. */
export async function registerAgent(deps: Deps, auth: AuthContext, input: RegisterInput) {
  const poolId = auth.poolId!;
  const { token, hash } = newOpaqueToken(AGENT_TOKEN_PREFIX);
  const agent = await deps.db.transaction(async (tx) => {
    const id = await insertAgent(tx, {
      orgId: auth.orgId,
      poolId,
      name: input.name,
      hostname: input.hostname ?? '',
      version: input.version ?? '',
      os: input.os ?? '',
      tags: tagsToArray(input.tags),
      maxConcurrency: input.max_concurrency ?? 1,
      tokenHash: hash,
    });
    await insertStatusEvents(tx, [{ agentId: id, orgId: auth.orgId, from: null, to: 'active', reason: 'registered' }]);
    const row = (await findAgent(tx, auth.orgId, id))!;
    await recordAudit(tx, auth, { action: 'agent.registered', resource: ['agent', id], after: presentAgent(row, deps.config) });
    return row;
  });
  const view = presentAgent(agent, deps.config);
  publishOrgEvent(deps.bus, auth.orgId, 'agent.registered', { agent_id: agent.id, pool_id: agent.pool_id, agent: view });
  return {
    agent: view,
    token,
    heartbeat_interval_seconds: deps.config.agentHeartbeatSeconds,
    lease_seconds: deps.config.jobLeaseSeconds,
    lost_after_seconds: lostAfterMs(deps.config) / 1000,
  };
}

export async function getAgent(deps: Deps, auth: AuthContext, id: string) {
  return presentAgent(await requireAgent(deps, auth, id), deps.config);
}

export interface AgentListQuery {
  pool?: string;
  status?: string;
  healthy?: boolean;
  include_stopped?: boolean;
  limit?: number;
  cursor?: string;
}

const STORED_STATUS: Record<string, AgentStatus[]> = {
  idle: ['active'],
  busy: ['active'],
  active: ['active'],
  paused: ['paused'],
  draining: ['draining'],
  lost: ['lost'],
  stopped: ['stopped'],
};

export async function listAgentsPage(deps: Deps, auth: AuthContext, q: AgentListQuery) {
  const limit = q.limit ?? 50;
  const cursor = q.cursor ? decodeCursor(q.cursor, 2) : undefined;
  const pool = q.pool ? await requirePool(deps, auth, q.pool) : undefined;
  const healthyStatuses: AgentStatus[] = ['active', 'paused', 'draining'];
  const rows = await listAgents(deps.db, {
    orgId: auth.orgId,
    poolId: pool?.id,
    statuses: q.healthy ? healthyStatuses : q.status ? STORED_STATUS[q.status] : undefined,
    heardSince: q.healthy ? new Date(Date.now() - lostAfterMs(deps.config)) : undefined,
    includeStopped: q.include_stopped === true || q.status === 'stopped',
    after: cursor ? { registeredAt: String(cursor[0]), id: String(cursor[1]) } : undefined,
    limit: limit + 1,
  });
  let items = rows.slice(0, limit).map((r) => presentAgent(r, deps.config));
  const last = rows.slice(0, limit).at(-1);
  // idle/busy are derived, so that part of the filter applies to the page.
  if (q.status === 'idle' || q.status === 'busy') items = items.filter((a) => a.status === q.status);
  return { items, next_cursor: rows.length > limit && last ? encodeCursor([iso(last.registered_at), last.id]) : null };
}

const USER_SETTABLE: Record<string, AgentStatus> = { paused: 'paused', active: 'active', draining: 'draining' };

/** Pause (takes no new jobs), resume, or drain (finishes its jobs, takes no new ones). */
export async function setStatusByUser(deps: Deps, auth: AuthContext, id: string, status: 'paused' | 'active' | 'draining') {
  const agent = await requireAgent(deps, auth, id);
  if (agent.status === 'stopped') throw new NotFoundError('Agent');
  await changeStatus(deps, auth, agent, USER_SETTABLE[status]!, `set by ${auth.actor.label}`);
  return getAgent(deps, auth, id);
}

async function changeStatus(deps: Deps, auth: AuthContext, agent: AgentRow, status: AgentStatus, reason: string) {
  const changed = await deps.db.transaction(async (tx) => {
    const previous = await setAgentStatus(tx, auth.orgId, agent.id, status);
    if (!previous || previous.previous === status) return false;
    await insertStatusEvents(tx, [{ agentId: agent.id, orgId: auth.orgId, from: previous.previous, to: status, reason }]);
    await recordAudit(tx, auth, {
      action: 'agent.status_changed',
      resource: ['agent', agent.id],
      details: { from: previous.previous, to: status, reason },
    });
    return true;
  });
  if (changed)
    publishOrgEvent(deps.bus, auth.orgId, 'agent.status_changed', { agent_id: agent.id, pool_id: agent.pool_id, status });
}

/**
 * Deregistration, by an admin or by the agent itself: its token stops working, and jobs
 * still leased to it end as `agent_lost`, which their retry rules send to other agents.
 */
export async function deregisterAgent(deps: Deps, auth: AuthContext, id: string): Promise<void> {
  if (!auth.agentId && !can(auth, 'agents:write')) throw new ForbiddenError('Deregistering an agent needs "agents:write".');
  const agent = await requireAgent(deps, auth, id);
  if (agent.status === 'stopped') throw new NotFoundError('Agent');
  await transactionWithEffects(deps.db, async (tx, after) => {
    const previous = await setAgentStatus(tx, auth.orgId, id, 'stopped');
    await insertStatusEvents(tx, [
      { agentId: id, orgId: auth.orgId, from: previous?.previous ?? null, to: 'stopped', reason: 'deregistered' },
    ]);
    await recordAudit(tx, auth, {
      action: 'agent.deregistered',
      resource: ['agent', id],
      before: presentAgent(agent, deps.config),
    });
    const jobs = await lockLeasedJobsOfAgents(tx, [id]);
    await endAttempts(
      deps,
      tx,
      after,
      jobs.map((job) => ({ job, auth, failure: { reason: 'agent_lost', exitStatus: null, message: 'agent deregistered' } })),
    );
  });
  deps.bus.publish(AUTH_TOPIC, 'agent.deregistered', { agentId: id });
  publishOrgEvent(deps.bus, auth.orgId, 'agent.deregistered', { agent_id: id, pool_id: agent.pool_id });
}

export interface HeartbeatInput {
  running_jobs?: string[];
  load?: Record<string, unknown>;
  /** The agent is shutting down: finish what runs, take nothing new. */
  draining?: boolean;
}

/**
 * Proof of life. Renews the leases of the jobs the agent says it runs and tells it what
 * to stop: jobs someone canceled, and jobs it reports but no longer holds (its lease
 * lapsed and the job went elsewhere) — those it must abandon, so one job never runs twice.
 */
export async function heartbeat(deps: Deps, auth: AuthContext, id: string, input: HeartbeatInput) {
  if (auth.agentId !== id) throw new NotFoundError('Agent');
  const beat = await recordHeartbeat(deps.db, id, input.load ?? {});
  if (!beat) throw new NotFoundError('Agent');
  if (beat.previous === 'lost') {
    const back = systemContext(auth.orgId, 'queue-reaper');
    await deps.db.transaction(async (tx) => {
      await insertStatusEvents(tx, [
        { agentId: id, orgId: auth.orgId, from: 'lost', to: 'active', reason: 'heartbeat after being lost' },
      ]);
      await recordAudit(tx, back, {
        action: 'agent.status_changed',
        resource: ['agent', id],
        details: { from: 'lost', to: 'active' },
      });
    });
    publishOrgEvent(deps.bus, auth.orgId, 'agent.status_changed', { agent_id: id, pool_id: auth.poolId, status: 'active' });
  }
  let status = beat.status;
  if (input.draining && status === 'active') {
    const agent = await requireAgent(deps, auth, id);
    await changeStatus(deps, auth, agent, 'draining', 'the agent is shutting down');
    status = 'draining';
  }
  const reported = [...new Set(input.running_jobs ?? [])];
  const held = await extendLeases(deps.db, id, reported, deps.config.jobLeaseSeconds);
  const heldIds = new Set(held.map((h) => h.id));
  return {
    status,
    cancel: held.filter((h) => h.cancel_requested).map((h) => h.id),
    abandon: reported.filter((jobId) => !heldIds.has(jobId)),
    heartbeat_interval_seconds: deps.config.agentHeartbeatSeconds,
    lease_seconds: deps.config.jobLeaseSeconds,
    lost_after_seconds: lostAfterMs(deps.config) / 1000,
  };
}
