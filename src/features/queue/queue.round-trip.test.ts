// The one-round-trip agent protocol: a claim that starts its jobs at once (`start`) and
// hands in the jobs the agent finished (`reports`), with one commit: one statement for the
// usual hand-in, a transaction for the rest.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import {
  claim,
  createPool,
  enqueue,
  getJob,
  registerAgent,
  reportAll,
  type JobJson,
  type TestAgent,
  type TestPool,
} from '../../../test/helpers/queue.js';
import type { BusEvent } from '../../platform/bus.js';

let t: TestApp;
let owner: TestUser;
let pool: TestPool;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
  pool = await createPool(t, owner, 'round-trip');
});
afterAll(() => t.close());

interface Answer {
  jobs: JobJson[];
  results?: { job_id: string; ok: boolean; state?: string; error?: { status: number; code: string } }[];
}

type Report = { job_id: string; lease_token?: string; action: string; exit_status?: number };

function fusedClaim(agent: TestAgent, body: { max?: number; start?: boolean; reports?: Report[]; wait_seconds?: number }) {
  return t.app.inject({ method: 'POST', url: '/api/v1/queue/claim', headers: agent.headers, payload: body });
}

const completion = (job: JobJson): Report => ({ job_id: job.id, lease_token: job.lease_token, action: 'complete' });

describe('claim with start', () => {
  it('hands out running jobs: one transition, one audit event, both bus events', async () => {
    const agent = await registerAgent(t, pool);
    const queued = await enqueue(t, owner, { pool: pool.name });
    const events: BusEvent[] = [];
    const off = t.deps.bus.subscribe(`org:${owner.orgId}`, (event) => void events.push(event));
    try {
      const res = await fusedClaim(agent, { start: true });
      expect(res.statusCode, res.body).toBe(200);
      const [job] = res.json<Answer>().jobs;
      expect(job).toMatchObject({ id: queued.id, state: 'running', attempt: 1 });
      expect(job!.started_at).toBe(job!.claimed_at);
      expect(await getJob(t, owner, queued.id)).toMatchObject({ state: 'running' });
      const audit = await expectAuditEvent(t, { orgId: owner.orgId, action: 'job.claimed', resourceId: queued.id });
      expect(audit.payload).toEqual({ attempt: 1, agent_id: agent.id, started: true });
      const { rows } = await t.deps.db.query(`SELECT 1 FROM audit_events WHERE action = 'job.started' AND resource_id = $1`, [
        queued.id,
      ]);
      expect(rows).toHaveLength(0);
      await expect
        .poll(() => events.filter((e) => (e.data as { job_id?: string }).job_id === queued.id).map((e) => e.type))
        .toEqual(['job.claimed', 'job.started']);

      // A start report under the same lease is a harmless repeat, as after a separate start.
      const again = await reportAll(t, agent, [job!], 'start');
      expect(again.json().results[0]).toMatchObject({ ok: true, state: 'running' });
      const done = await reportAll(t, agent, [job!], 'complete');
      expect(done.json().results[0]).toMatchObject({ ok: true, state: 'completed' });
    } finally {
      off();
    }
  });

  it('without start, a claimed job still waits for its start report', async () => {
    const agent = await registerAgent(t, pool);
    await enqueue(t, owner, { pool: pool.name });
    const [job] = await claim(t, agent);
    expect(job).toMatchObject({ state: 'claimed', started_at: null });
    const audit = await expectAuditEvent(t, { orgId: owner.orgId, action: 'job.claimed', resourceId: job!.id });
    expect(audit.payload).toEqual({ attempt: 1, agent_id: agent.id });
    await reportAll(t, agent, [job!], 'complete');
  });
});

describe('claim with reports', () => {
  it('hands in the finished job and takes the next in the same transaction, freeing the slot', async () => {
    const agent = await registerAgent(t, pool, { max_concurrency: 1 });
    const first = await enqueue(t, owner, { pool: pool.name, name: 'first' });
    const second = await enqueue(t, owner, { pool: pool.name, name: 'second' });
    const [held] = (await fusedClaim(agent, { start: true })).json<Answer>().jobs;
    expect(held!.id).toBe(first.id);

    const res = await fusedClaim(agent, { start: true, reports: [completion(held!)] });
    expect(res.statusCode, res.body).toBe(200);
    const answer = res.json<Answer>();
    expect(answer.results).toEqual([{ job_id: first.id, ok: true, state: 'completed', attempt: 1 }]);
    // Concurrency 1: the next job fits only because the completion came first.
    expect(answer.jobs.map((j) => [j.id, j.state])).toEqual([[second.id, 'running']]);
    // now() is the transaction's start: equal stamps mean one transaction (one commit).
    const { rows } = await t.deps.db.query<{ same: boolean }>(
      `SELECT (SELECT finished_at FROM job_history WHERE id = $1) = (SELECT claimed_at FROM jobs WHERE id = $2) AS same`,
      [first.id, second.id],
    );
    expect(rows[0]!.same).toBe(true);
    await reportAll(t, agent, answer.jobs, 'complete');
  });

  it('frees the slot of every job handed in, and no more', async () => {
    const own = await createPool(t, owner, 'round-trip-slots');
    const agent = await registerAgent(t, own, { max_concurrency: 2 });
    for (let i = 0; i < 5; i++) await enqueue(t, owner, { pool: own.name });
    const held = (await fusedClaim(agent, { max: 5, start: true })).json<Answer>().jobs;
    expect(held).toHaveLength(2);
    // Both handed in: two slots free, although the statement's snapshot still sees them held.
    const both = (await fusedClaim(agent, { max: 5, start: true, reports: held.map(completion) })).json<Answer>();
    expect(both.results!.map((r) => r.ok)).toEqual([true, true]);
    expect(both.jobs).toHaveLength(2);
    // One handed in: one slot free.
    const one = (await fusedClaim(agent, { max: 5, start: true, reports: [completion(both.jobs[0]!)] })).json<Answer>();
    expect(one.results!.map((r) => r.ok)).toEqual([true]);
    expect(one.jobs).toHaveLength(1);
    await reportAll(t, agent, [both.jobs[1]!, ...one.jobs], 'complete');
  });

  it('answers every report even when nothing is left to claim (200, not 204)', async () => {
    const quiet = await createPool(t, owner, 'round-trip-quiet');
    const agent = await registerAgent(t, quiet);
    await enqueue(t, owner, { pool: quiet.name });
    const [job] = (await fusedClaim(agent, { start: true })).json<Answer>().jobs;
    const res = await fusedClaim(agent, { start: true, reports: [completion(job!)] });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<Answer>()).toMatchObject({ jobs: [], results: [{ job_id: job!.id, ok: true, state: 'completed' }] });
    expect((await fusedClaim(agent, { start: true })).statusCode).toBe(204);
  });

  it('a failing exit status follows the job’s retry rules', async () => {
    const agent = await registerAgent(t, pool);
    const queued = await enqueue(t, owner, { pool: pool.name, max_attempts: 2, retry: { exit_statuses: [3] } });
    const [job] = (await fusedClaim(agent, { start: true })).json<Answer>().jobs;
    expect(job!.id).toBe(queued.id);
    const res = await fusedClaim(agent, { reports: [{ ...completion(job!), exit_status: 3 }] });
    expect(res.json<Answer>().results).toEqual([{ job_id: queued.id, ok: true, state: 'scheduled', attempt: 1 }]);
    expect(await getJob(t, owner, queued.id)).toMatchObject({ state: 'scheduled' });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'job.retry_scheduled', resourceId: queued.id });
  });

  it('refuses stale leases, other agents’ jobs and other organizations’ jobs one by one; the claim still happens', async () => {
    const agent = await registerAgent(t, pool, { max_concurrency: 2 });
    const other = await registerAgent(t, pool);
    const stranger = await createOrgAndLogin(t);
    const foreignPool = await createPool(t, stranger, 'round-trip-foreign');
    const foreignAgent = await registerAgent(t, foreignPool);
    await enqueue(t, stranger, { pool: foreignPool.name });
    const [foreign] = (await fusedClaim(foreignAgent, { start: true })).json<Answer>().jobs;

    await enqueue(t, owner, { pool: pool.name });
    const [mine] = (await fusedClaim(agent, { start: true })).json<Answer>().jobs;
    await enqueue(t, owner, { pool: pool.name });
    const [theirs] = (await fusedClaim(other, { start: true })).json<Answer>().jobs;
    const next = await enqueue(t, owner, { pool: pool.name });

    const res = await fusedClaim(agent, {
      start: true,
      reports: [
        { ...completion(mine!), lease_token: '00000000-0000-4000-8000-000000000000' },
        completion(theirs!),
        completion(foreign!),
      ],
    });
    expect(res.statusCode, res.body).toBe(200);
    const answer = res.json<Answer>();
    expect(answer.results!.map((r) => [r.ok, r.error?.status, r.error?.code])).toEqual([
      [false, 409, 'lease_not_current'],
      [false, 404, 'not_found'],
      [false, 404, 'not_found'],
    ]);
    expect(answer.jobs.map((j) => j.id)).toEqual([next.id]);
    // Nothing moved for the refused reports.
    expect(await getJob(t, owner, theirs!.id)).toMatchObject({ state: 'running' });
    expect(await getJob(t, stranger, foreign!.id)).toMatchObject({ state: 'running' });
    await reportAll(t, agent, [mine!, ...answer.jobs], 'complete');
    await reportAll(t, other, [theirs!], 'complete');
    await reportAll(t, foreignAgent, [foreign!], 'complete');
  });

  it('a waiting claim with reports long-polls after handing them in, and answers both', async () => {
    const waiting = await createPool(t, owner, 'round-trip-wait');
    const agent = await registerAgent(t, waiting);
    await enqueue(t, owner, { pool: waiting.name });
    const [job] = (await fusedClaim(agent, { start: true })).json<Answer>().jobs;
    const parked = fusedClaim(agent, { start: true, wait_seconds: 20, reports: [completion(job!)] });
    await expect.poll(() => t.deps.queue.wakeups.waiting(), { timeout: 5_000, interval: 5 }).toBe(1);
    // Handed in before it parked: the job is already completed.
    expect(await getJob(t, owner, job!.id)).toMatchObject({ state: 'completed' });
    const next = await enqueue(t, owner, { pool: waiting.name });
    const answer = (await parked).json<Answer>();
    expect(answer.results).toMatchObject([{ job_id: job!.id, ok: true, state: 'completed' }]);
    expect(answer.jobs.map((j) => [j.id, j.state])).toEqual([[next.id, 'running']]);
    await reportAll(t, agent, answer.jobs, 'complete');
  });

  it('rejects malformed bodies with problem+json 400s', async () => {
    const agent = await registerAgent(t, pool);
    const bad = [
      { start: 'yes' },
      { reports: 'none' },
      { reports: [{ job_id: 'not-a-uuid', lease_token: 'x', action: 'complete' }] },
      { reports: [{ job_id: crypto.randomUUID(), lease_token: crypto.randomUUID(), action: 'explode' }] },
      {
        reports: Array.from({ length: 501 }, () => ({
          job_id: crypto.randomUUID(),
          lease_token: crypto.randomUUID(),
          action: 'complete',
        })),
      },
    ];
    for (const payload of bad) {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/queue/claim', headers: agent.headers, payload });
      expect(res.statusCode, JSON.stringify(payload).slice(0, 80)).toBe(400);
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    }
    const user = await t.app.inject({
      method: 'POST',
      url: '/api/v1/queue/claim',
      headers: owner.headers,
      payload: { start: true },
    });
    expect(user.statusCode).toBe(403);
  });
});
