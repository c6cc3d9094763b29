import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { addUser, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { claim, createPool, enqueue, enqueueBatch, registerAgent, report } from '../../../test/helpers/queue.js';

let t: TestApp;
let owner: TestUser;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
});
afterAll(() => t.close());

describe('queue statistics and the dashboard summary', () => {
  it('counts live jobs by state and finished work with wait and run times, per pool and priority', async () => {
    const pool = await createPool(t, owner, 'stats');
    const agent = await registerAgent(t, pool, { max_concurrency: 10 });
    await enqueueBatch(t, owner, [
      { pool: 'stats', priority: 'HIGH' },
      { pool: 'stats', priority: 'HIGH' },
      { pool: 'stats' },
      { pool: 'stats', priority: 'LOW' },
      { pool: 'stats', delay_seconds: 600 },
    ]);
    const jobs = await claim(t, agent, 3);
    for (const job of jobs) await report(t, agent, job, 'start');
    await report(t, agent, jobs[0]!, 'complete');
    await report(t, agent, jobs[1]!, 'complete', { exit_status: 4 });

    const res = await t.app.inject({ method: 'GET', url: '/api/v1/queue/stats?pool=stats', headers: owner.headers });
    expect(res.statusCode, res.body).toBe(200);
    const stats = res.json<Record<string, unknown> & { by_priority: { priority: string; completed: number }[] }>();
    expect(stats).toMatchObject({
      window_minutes: 60,
      queued: 1,
      scheduled: 1,
      running: 1,
      completed: 1,
      failed: 1,
      dead_lettered: 0,
      failure_rate: 0.5,
    });
    expect(stats.avg_wait_seconds).toBeGreaterThanOrEqual(0);
    expect(stats.p95_wait_seconds).toBeGreaterThanOrEqual(0);
    expect(stats.avg_execution_seconds).toBeGreaterThanOrEqual(0);
    expect(stats.by_priority.find((p) => p.priority === 'HIGH')).toMatchObject({ completed: 1 });

    const summary = await t.app.inject({ method: 'GET', url: '/api/v1/dashboard/summary', headers: owner.headers });
    expect(summary.json()).toMatchObject({
      total_jobs: 5,
      jobs_queued: 2,
      jobs_running: 1,
      jobs_completed: 1,
      jobs_failed: 1,
      jobs_by_state: { queued: 1, scheduled: 1, running: 1, completed: 1, failed: 1 },
    });
  });

  it('exports instance-wide queue figures to Prometheus, without organization labels', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/cairn_queue_jobs\{state="queued",priority="\d"\} [1-9]/);
    expect(res.body).toMatch(/cairn_queue_attempts_finished_total\{outcome="completed"\} [1-9]/);
    expect(res.body).toMatch(/cairn_agents\{status="active"\} [1-9]/);
    expect(res.body).toContain('cairn_queue_wait_seconds_bucket');
    expect(res.body).not.toContain(owner.orgId);
  });

  it('is readable by viewers, scoped to the organization', async () => {
    const viewer = await addUser(t, owner, 'viewer');
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/queue/stats', headers: viewer.headers })).statusCode).toBe(200);
    const stranger = await createOrgAndLogin(t);
    await createPool(t, stranger, 'stats');
    await enqueue(t, stranger, { pool: 'stats' });
    const mine = await t.app.inject({ method: 'GET', url: '/api/v1/dashboard/summary', headers: stranger.headers });
    expect(mine.json()).toMatchObject({ total_jobs: 1, jobs_queued: 1, jobs_completed: 0 });
    const maintenance = await t.app.inject({
      method: 'POST',
      url: '/api/v1/queue/maintenance/requeue-expired',
      headers: viewer.headers,
    });
    expect(maintenance.statusCode).toBe(403);
  });
});
