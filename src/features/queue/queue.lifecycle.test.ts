import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { cutCheckpoint } from '../ledger/ledger.checkpoints.js';
import { loadLedgerIdentity } from '../ledger/ledger.identity.js';
import { checkIntegrity } from '../ledger/ledger.integrity.js';
import { sequenceAll } from '../ledger/ledger.sequencer.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
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

let t: TestApp;
let owner: TestUser;
let pool: TestPool;
let agentA: TestAgent;
let agentB: TestAgent;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
  pool = await createPool(t, owner, 'linux');
  agentA = await registerAgent(t, pool, { name: 'a', max_concurrency: 4 });
  agentB = await registerAgent(t, pool, { name: 'b', max_concurrency: 4 });
});
afterAll(() => t.close());

describe('a job from enqueue to completion', () => {
  it('queued → claimed → running → completed, each transition audited, outputs kept', async () => {
    const job = await enqueue(t, owner, { pool: 'linux', name: 'build', commands: ['make'] });
    expect(job).toMatchObject({ state: 'queued', priority: 'NORMAL', attempt: 0, pool: 'linux' });
    expect(job).not.toHaveProperty('lease_token');

    const [claimed] = await claim(t, agentA);
    expect(claimed).toMatchObject({ id: job.id, state: 'claimed', attempt: 1, agent_id: agentA.id });
    expect(claimed!.lease_token).toMatch(/^[0-9a-f-]{36}$/);

    const started = await report(t, agentA, claimed!, 'start');
    expect(started.statusCode, started.body).toBe(200);
    expect(started.json()).toMatchObject({ state: 'running' });
    // A repeated start under the same lease is harmless.
    expect((await report(t, agentA, claimed!, 'start')).statusCode).toBe(200);

    const done = await report(t, agentA, claimed!, 'complete', { exit_status: 0, outputs: { version: '1.2.3' } });
    expect(done.statusCode, done.body).toBe(200);
    expect(done.json()).toMatchObject({ state: 'completed', exit_status: 0, outputs: { version: '1.2.3' } });

    // A duplicate report can never complete it twice.
    const again = await report(t, agentA, claimed!, 'complete', { exit_status: 0 });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'job_finished' });

    for (const action of ['job.queued', 'job.claimed', 'job.started', 'job.completed']) {
      await expectAuditEvent(t, { orgId: owner.orgId, action, resourceId: job.id });
    }
    const activity = await t.app.inject({ method: 'GET', url: `/api/v1/agents/${agentA.id}/activity`, headers: owner.headers });
    expect(activity.json<{ items: { job_id: string; outcome: string }[] }>().items[0]).toMatchObject({
      job_id: job.id,
      outcome: 'completed',
    });
  });

  it('a non-zero exit status is a failure; retried only when the job’s rules say so', async () => {
    const plain = await enqueue(t, owner, { pool: 'linux' });
    const [p] = await claim(t, agentA);
    expect(p!.id).toBe(plain.id);
    const failed = await report(t, agentA, p!, 'complete', { exit_status: 1 });
    expect(failed.json()).toMatchObject({ state: 'failed', exit_status: 1, failure_reason: 'exit_status' });

    const flaky = await enqueue(t, owner, {
      pool: 'linux',
      max_attempts: 2,
      retry: { exit_statuses: [2], backoff_seconds: 1, max_backoff_seconds: 1 },
    });
    const [first] = await claim(t, agentA);
    const before = Date.now();
    const retried = await report(t, agentA, first!, 'complete', { exit_status: 2 });
    expect(retried.json()).toMatchObject({
      state: 'scheduled',
      attempt: 1,
      last_failure: { reason: 'exit_status', exit_status: 2 },
    });
    // Backoff: between half and all of the (1 s) ceiling.
    const delay = new Date(retried.json<{ run_at: string }>().run_at).getTime() - before;
    expect(delay).toBeGreaterThanOrEqual(400);
    expect(delay).toBeLessThanOrEqual(1_600);
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'job.retry_scheduled', resourceId: flaky.id });
    expect(await claim(t, agentA)).toEqual([]); // still backing off

    await makeDue(t, flaky.id);
    expect((await runMaintenance(t, owner)).promoted).toBe(1);
    const [second] = await claim(t, agentB);
    expect(second).toMatchObject({ id: flaky.id, attempt: 2 });
    const dead = await report(t, agentB, second!, 'fail', { reason: 'exit_status', exit_status: 2 });
    expect(dead.json()).toMatchObject({ state: 'dead_lettered', attempt: 2 });

    const letters = await t.app.inject({ method: 'GET', url: '/api/v1/queue/dead-letters', headers: owner.headers });
    expect(letters.json<{ items: { id: string }[] }>().items.map((j) => j.id)).toContain(flaky.id);

    const redriven = await t.app.inject({ method: 'POST', url: `/api/v1/jobs/${flaky.id}/redrive`, headers: owner.headers });
    // Attempts keep their numbers (logs key on them); the redrive grants a fresh budget.
    expect(redriven.json()).toMatchObject({ state: 'queued', attempt: 2, max_attempts: 2 });
    const [third] = await claim(t, agentA);
    expect(third).toMatchObject({ id: flaky.id, attempt: 3 });
    expect((await report(t, agentA, third!, 'complete')).json()).toMatchObject({ state: 'completed' });
    const notAgain = await t.app.inject({ method: 'POST', url: `/api/v1/jobs/${flaky.id}/redrive`, headers: owner.headers });
    expect(notAgain.statusCode).toBe(409);
  });

  it('a lapsed lease sends the job elsewhere; the old lease is refused forever', async () => {
    const job = await enqueue(t, owner, { pool: 'linux' });
    const [mine] = await claim(t, agentA);
    expect(mine!.id).toBe(job.id);
    expect((await report(t, agentA, mine!, 'start')).statusCode).toBe(200);

    // The agent stops renewing: time passes beyond the lease.
    await t.deps.db.query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", [job.id]);
    expect((await runMaintenance(t, owner)).leases_expired).toBe(1);
    expect(await getJob(t, owner, job.id)).toMatchObject({ state: 'scheduled', last_failure: { reason: 'lease_expired' } });

    const late = await report(t, agentA, mine!, 'complete');
    expect(late.statusCode).toBe(409);
    expect(late.json()).toMatchObject({ code: 'lease_not_current' });

    await makeDue(t, job.id);
    await runMaintenance(t, owner);
    const [theirs] = await claim(t, agentB);
    expect(theirs).toMatchObject({ id: job.id, attempt: 2 });
    expect((await report(t, agentA, mine!, 'complete')).statusCode).toBe(409);
    expect((await report(t, agentB, theirs!, 'complete')).json()).toMatchObject({ state: 'completed' });
    expect((await report(t, agentA, mine!, 'complete')).json()).toMatchObject({ code: 'job_finished' });
  });

  it('an agent can only touch its own jobs', async () => {
    const job = await enqueue(t, owner, { pool: 'linux' });
    const [mine] = await claim(t, agentA);
    expect(mine!.id).toBe(job.id);
    // Agent B never held it: for B it does not exist, even with the right lease token.
    const res = await report(t, agentB, mine!, 'complete');
    expect(res.statusCode).toBe(404);
    // Users cannot report for agents at all.
    const asUser = await t.app.inject({
      method: 'POST',
      url: `/api/v1/jobs/${job.id}/complete`,
      headers: owner.headers,
      payload: { lease_token: mine!.lease_token },
    });
    expect(asUser.statusCode).toBe(403);
    expect((await report(t, agentA, mine!, 'complete')).statusCode).toBe(200);
  });

  it('cancel: a queued job ends at once; a running one is stopped through its agent', async () => {
    const queued = await enqueue(t, owner, { pool: 'linux' });
    const canceled = await t.app.inject({ method: 'POST', url: `/api/v1/jobs/${queued.id}/cancel`, headers: owner.headers });
    expect(canceled.json()).toMatchObject({ state: 'canceled' });
    expect(await claim(t, agentA)).toEqual([]);

    const running = await enqueue(t, owner, { pool: 'linux' });
    const [job] = await claim(t, agentA);
    await report(t, agentA, job!, 'start');
    const asked = await t.app.inject({ method: 'POST', url: `/api/v1/jobs/${running.id}/cancel`, headers: owner.headers });
    expect(asked.json()).toMatchObject({ state: 'running', cancel_requested: true });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'job.cancel_requested', resourceId: running.id });

    const beat = await t.app.inject({
      method: 'POST',
      url: `/api/v1/agents/${agentA.id}/heartbeat`,
      headers: agentA.headers,
      payload: { running_jobs: [running.id] },
    });
    expect(beat.json()).toMatchObject({ status: 'active', cancel: [running.id], abandon: [] });
    const stopped = await report(t, agentA, job!, 'fail', { reason: 'canceled', exit_status: 143 });
    expect(stopped.json()).toMatchObject({ state: 'canceled' });
  });

  it('a cancel the agent ignores is forced after a grace', async () => {
    const running = await enqueue(t, owner, { pool: 'linux' });
    const [job] = await claim(t, agentA);
    await report(t, agentA, job!, 'start');
    await t.app.inject({ method: 'POST', url: `/api/v1/jobs/${running.id}/cancel`, headers: owner.headers });
    await t.deps.db.query("UPDATE jobs SET cancel_requested_at = now() - interval '1 hour' WHERE id = $1", [running.id]);
    expect((await runMaintenance(t, owner)).cancels_forced).toBe(1);
    expect(await getJob(t, owner, running.id)).toMatchObject({ state: 'canceled' });
  });

  it('a job running past its timeout is ended by the server too', async () => {
    const job = await enqueue(t, owner, { pool: 'linux', timeout_seconds: 5 });
    const [mine] = await claim(t, agentA);
    await report(t, agentA, mine!, 'start');
    await t.deps.db.query("UPDATE jobs SET started_at = now() - interval '1 hour' WHERE id = $1", [job.id]);
    expect((await runMaintenance(t, owner)).timed_out).toBe(1);
    expect(await getJob(t, owner, job.id)).toMatchObject({ state: 'timed_out', failure_reason: 'timeout' });
  });

  it('priority can change only before a claim', async () => {
    const job = await enqueue(t, owner, { pool: 'linux', priority: 'LOW' });
    const patched = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/jobs/${job.id}`,
      headers: owner.headers,
      payload: { priority: 'CRITICAL' },
    });
    expect(patched.json()).toMatchObject({ priority: 'CRITICAL' });
    const [mine] = await claim(t, agentA);
    const late = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/jobs/${job.id}`,
      headers: owner.headers,
      payload: { priority: 'LOW' },
    });
    expect(late.statusCode).toBe(409);
    await report(t, agentA, mine!, 'complete');
  });

  it('transitions recorded by SQL reach the ledger, hashed from their rows, and verify', async () => {
    const job = await enqueue(t, owner, { pool: 'linux', env: { API_TOKEN: 'not-in-the-trail' } });
    const [mine] = await claim(t, agentA);
    await report(t, agentA, mine!, 'start');
    await report(t, agentA, mine!, 'complete', { outputs: { digest: 'sha256:abc' } });
    const queued = await expectAuditEvent(t, { orgId: owner.orgId, action: 'job.queued', resourceId: job.id });
    expect(queued.payload).toMatchObject({ env_keys: ['API_TOKEN'], state: 'queued' });
    expect(JSON.stringify(queued.payload)).not.toContain('not-in-the-trail');
    const done = await expectAuditEvent(t, {
      orgId: owner.orgId,
      action: 'job.completed',
      resourceId: job.id,
      actorId: agentA.id,
    });
    expect(done.payload).toMatchObject({ attempt: 1, outputs: { digest: 'sha256:abc' } });

    await sequenceAll(t.deps.db);
    const identity = await loadLedgerIdentity(t.deps.db, t.deps.config.instanceName);
    await cutCheckpoint(t.deps.db, identity);
    const { rows } = await t.deps.db.query<{ n: number }>('SELECT count(*)::int AS n FROM ledger_queue');
    expect(rows[0]!.n).toBe(0);
    const report_ = await checkIntegrity(t.deps.db, identity.signer.publicKey);
    expect(report_).toMatchObject({ ok: true });
    expect(report_.checked_leaves).toBeGreaterThan(4);
  });

  it('a job token works only for its job, only while its lease is current', async () => {
    const job = await enqueue(t, owner, { pool: 'linux' });
    const [mine] = await claim(t, agentA);
    const token = mine!.job_token as string;
    expect(token).toMatch(new RegExp(`^cairn_job_${job.id}\\.`));
    const session = (auth: string) =>
      t.app.inject({ method: 'GET', url: '/api/v1/auth/session', headers: { authorization: `Bearer ${auth}` } });
    expect((await session(token)).json()).toMatchObject({ kind: 'job', permissions: ['job:self'] });
    // It is not an agent's credential and cannot claim.
    const asAgent = await t.app.inject({
      method: 'POST',
      url: '/api/v1/queue/claim',
      headers: { authorization: `Bearer ${token}` },
      payload: {},
    });
    expect(asAgent.statusCode).toBe(403);
    // A token forged for another job, or with a tampered MAC, is refused.
    const other = await enqueue(t, owner, { pool: 'linux' });
    expect((await session(token.replace(job.id, other.id))).statusCode).toBe(401);
    // The MAC's first character carries six whole bits, so changing it always changes the MAC.
    const macAt = token.indexOf('.') + 1;
    const forgedMac = `${token.slice(0, macAt)}${token[macAt] === 'A' ? 'B' : 'A'}${token.slice(macAt + 1)}`;
    expect((await session(forgedMac)).statusCode).toBe(401);
    await report(t, agentA, mine!, 'complete');
    expect((await session(token)).statusCode).toBe(401);
    const [next] = await claim(t, agentA);
    await report(t, agentA, next!, 'complete');
  });
});
