import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { addUser, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import {
  claim,
  createPool,
  enqueue,
  getJob,
  makeDue,
  registerAgent,
  report,
  runMaintenance,
  type TestAgent,
  type TestPool,
} from '../../../test/helpers/queue.js';
import { expectNotListed } from '../../../test/helpers/tenancy.js';

let t: TestApp;
let owner: TestUser;
let pool: TestPool;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
  pool = await createPool(t, owner, 'agents');
});
afterAll(() => t.close());

const heartbeat = (agent: TestAgent, body: Record<string, unknown> = {}) =>
  t.app.inject({ method: 'POST', url: `/api/v1/agents/${agent.id}/heartbeat`, headers: agent.headers, payload: body });

/** Time travel: the agent was last heard from long ago. */
const silence = (agent: TestAgent) =>
  t.deps.db.query("UPDATE agents SET last_heartbeat_at = now() - interval '1 hour' WHERE id = $1", [agent.id]);

describe('registration and credentials', () => {
  it('registers with the pool token and gets its own token, shown once', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/agents',
      headers: { authorization: `Bearer ${pool.registrationToken}` },
      payload: {
        name: 'builder-1',
        hostname: 'host-1',
        version: '1.0.0',
        os: 'linux',
        tags: { os: 'linux', gpu: 'true' },
        max_concurrency: 2,
      },
    });
    expect(res.statusCode, res.body).toBe(201);
    const body = res.json<{ agent: { id: string }; token: string }>();
    expect(body).toMatchObject({
      agent: { name: 'builder-1', pool: 'agents', status: 'idle', healthy: true, tags: { os: 'linux', gpu: 'true' } },
      heartbeat_interval_seconds: 10,
      lease_seconds: 30,
      lost_after_seconds: 30,
    });
    expect(body.token).toMatch(/^cairn_agt_/);
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'agent.registered', resourceId: body.agent.id });
    const got = await t.app.inject({ method: 'GET', url: `/api/v1/agents/${body.agent.id}`, headers: owner.headers });
    expect(got.body).not.toContain(body.token);
  });

  it('refuses bad registration tokens; tokens only do what they are for', async () => {
    const bad = await t.app.inject({
      method: 'POST',
      url: '/api/v1/agents',
      headers: { authorization: 'Bearer cairn_reg_not-a-real-token' },
      payload: { name: 'x' },
    });
    expect(bad.statusCode).toBe(401);
    // A user cannot register an agent, a registration token cannot read jobs, an agent cannot enqueue.
    expect(
      (await t.app.inject({ method: 'POST', url: '/api/v1/agents', headers: owner.headers, payload: { name: 'x' } })).statusCode,
    ).toBe(403);
    const reg = { authorization: `Bearer ${pool.registrationToken}` };
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/jobs', headers: reg })).statusCode).toBe(403);
    const agent = await registerAgent(t, pool);
    const asAgent = await t.app.inject({
      method: 'POST',
      url: '/api/v1/jobs',
      headers: agent.headers,
      payload: { pool: 'agents', commands: ['x'] },
    });
    expect(asAgent.statusCode).toBe(403);
    // An agent heartbeats only as itself.
    const other = await registerAgent(t, pool);
    const spoof = await t.app.inject({
      method: 'POST',
      url: `/api/v1/agents/${other.id}/heartbeat`,
      headers: agent.headers,
      payload: {},
    });
    expect(spoof.statusCode).toBe(404);
  });
});

describe('heartbeats, lost agents and deregistration', () => {
  it('a heartbeat renews leases and says what to abandon', async () => {
    const agent = await registerAgent(t, pool);
    const job = await enqueue(t, owner, { pool: 'agents' });
    const [mine] = await claim(t, agent);
    await report(t, agent, mine!, 'start');
    const before = (await getJob(t, owner, job.id)).lease_expires_at as string;
    const stranger = '6f1c1e6e-8d1b-4a55-9c3a-2f0e1d7b5a10';
    const beat = await heartbeat(agent, { running_jobs: [job.id, stranger], load: { cpu: 0.5 } });
    expect(beat.json()).toMatchObject({ status: 'active', cancel: [], abandon: [stranger] });
    const after = (await getJob(t, owner, job.id)).lease_expires_at as string;
    expect(new Date(after).getTime()).toBeGreaterThanOrEqual(new Date(before).getTime());
    const view = await t.app.inject({ method: 'GET', url: `/api/v1/agents/${agent.id}`, headers: owner.headers });
    expect(view.json()).toMatchObject({ status: 'busy', running_jobs: 1, load: { cpu: 0.5 } });
    await report(t, agent, mine!, 'complete');
  });

  it('a lost agent’s job is retried on another agent; the lost one is told to abandon it', async () => {
    const lostPool = await createPool(t, owner, 'lossy');
    const a = await registerAgent(t, lostPool, { name: 'a' });
    const b = await registerAgent(t, lostPool, { name: 'b' });
    const job = await enqueue(t, owner, { pool: 'lossy' });
    const [first] = await claim(t, a);
    await report(t, a, first!, 'start');
    await silence(a);
    expect((await runMaintenance(t, owner)).agents_lost).toBe(1);
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'agent.lost', resourceId: a.id });
    expect(await getJob(t, owner, job.id)).toMatchObject({ state: 'scheduled', last_failure: { reason: 'agent_lost' } });
    const lost = await t.app.inject({ method: 'GET', url: `/api/v1/agents/${a.id}`, headers: owner.headers });
    expect(lost.json()).toMatchObject({ status: 'lost', healthy: false });
    const healthy = await t.app.inject({ method: 'GET', url: '/api/v1/agents/healthy?pool=lossy', headers: owner.headers });
    expect(healthy.json<{ items: { id: string }[] }>().items.map((x) => x.id)).toEqual([b.id]);

    await makeDue(t, job.id);
    await runMaintenance(t, owner);
    const [second] = await claim(t, b);
    expect(second).toMatchObject({ id: job.id, attempt: 2 });
    // The lost agent comes back: it is active again and must abandon the job.
    const back = await heartbeat(a, { running_jobs: [job.id] });
    expect(back.json()).toMatchObject({ status: 'active', abandon: [job.id] });
    expect((await report(t, a, first!, 'complete')).statusCode).toBe(409);
    expect((await report(t, b, second!, 'complete')).json()).toMatchObject({ state: 'completed' });

    const history = await t.app.inject({ method: 'GET', url: `/api/v1/agents/${a.id}/history`, headers: owner.headers });
    expect(history.json<{ items: { from: string | null; to: string }[] }>().items.map((h) => `${h.from}→${h.to}`)).toEqual([
      'lost→active',
      'active→lost',
      'null→active',
    ]);
    const activity = await t.app.inject({ method: 'GET', url: `/api/v1/agents/${a.id}/activity`, headers: owner.headers });
    expect(activity.json<{ items: unknown[] }>().items[0]).toMatchObject({
      job_id: job.id,
      outcome: 'retried',
      reason: 'agent_lost',
    });
  });

  it('deregistration retires the token and sends held jobs elsewhere', async () => {
    const agent = await registerAgent(t, pool);
    const job = await enqueue(t, owner, { pool: 'agents' });
    const [mine] = await claim(t, agent);
    expect(mine!.id).toBe(job.id);
    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/agents/${agent.id}`, headers: agent.headers });
    expect(del.statusCode).toBe(204);
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'agent.deregistered', resourceId: agent.id });
    expect((await heartbeat(agent)).statusCode).toBe(401);
    expect(await getJob(t, owner, job.id)).toMatchObject({ state: 'scheduled', last_failure: { reason: 'agent_lost' } });
    const stopped = await t.app.inject({ method: 'GET', url: `/api/v1/agents?status=stopped`, headers: owner.headers });
    expect(stopped.json<{ items: { id: string }[] }>().items.map((a) => a.id)).toContain(agent.id);
    const def = await t.app.inject({ method: 'GET', url: `/api/v1/agents`, headers: owner.headers });
    expect(def.json<{ items: { id: string }[] }>().items.map((a) => a.id)).not.toContain(agent.id);
    await t.app.inject({ method: 'POST', url: `/api/v1/jobs/${job.id}/cancel`, headers: owner.headers });
  });

  it('a heartbeat with draining stops new claims; viewers cannot change an agent', async () => {
    const agent = await registerAgent(t, pool);
    expect((await heartbeat(agent, { draining: true })).json()).toMatchObject({ status: 'draining' });
    await enqueue(t, owner, { pool: 'agents' });
    expect(await claim(t, agent)).toEqual([]);
    const viewer = await addUser(t, owner, 'viewer');
    const res = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/agents/${agent.id}`,
      headers: viewer.headers,
      payload: { status: 'active' },
    });
    expect(res.statusCode).toBe(403);
    const viewerDelete = await t.app.inject({ method: 'DELETE', url: `/api/v1/agents/${agent.id}`, headers: viewer.headers });
    expect(viewerDelete.statusCode).toBe(403);
  });
});

describe('metrics', () => {
  it('jobs done, failure rate and busy time', async () => {
    const metricsPool = await createPool(t, owner, 'measured');
    const agent = await registerAgent(t, metricsPool, { max_concurrency: 4 });
    for (const exit of [0, 0, 0, 1]) {
      await enqueue(t, owner, { pool: 'measured' });
      const [job] = await claim(t, agent);
      await report(t, agent, job!, 'start');
      await report(t, agent, job!, 'complete', { exit_status: exit });
    }
    const res = await t.app.inject({
      method: 'GET',
      url: `/api/v1/agents/${agent.id}/metrics?window_hours=1`,
      headers: owner.headers,
    });
    expect(res.json()).toMatchObject({ attempts: 4, completed: 3, failed: 1, failure_rate: 0.25 });
    expect(res.json<{ busy_seconds: number }>().busy_seconds).toBeGreaterThanOrEqual(0);
  });

  it('another organization never sees the agents', async () => {
    const stranger = await createOrgAndLogin(t);
    const agent = await registerAgent(t, pool);
    await expectNotListed(t, '/api/v1/agents', stranger, agent.id);
    for (const path of ['', '/history', '/activity', '/metrics']) {
      const res = await t.app.inject({ method: 'GET', url: `/api/v1/agents/${agent.id}${path}`, headers: stranger.headers });
      expect(res.statusCode, path).toBe(404);
    }
    for (const [method, payload] of [
      ['PATCH', { status: 'paused' }],
      ['DELETE', undefined],
    ] as const) {
      const res = await t.app.inject({ method, url: `/api/v1/agents/${agent.id}`, headers: stranger.headers, payload });
      expect(res.statusCode, method).toBe(404);
    }
    const strangerPool = await createPool(t, stranger, 'theirs');
    const theirAgent = await registerAgent(t, strangerPool);
    const hb = await t.app.inject({
      method: 'POST',
      url: `/api/v1/agents/${agent.id}/heartbeat`,
      headers: theirAgent.headers,
      payload: {},
    });
    expect(hb.statusCode).toBe(404);
  });
});
