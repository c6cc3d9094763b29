// Pools, agents and jobs for tests, made through the HTTP API exactly as clients would.
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import type { TestApp } from './app.js';
import type { TestUser } from './auth.js';

export interface TestPool {
  name: string;
  id: string;
  registrationToken: string;
}

export interface TestAgent {
  id: string;
  token: string;
  headers: { authorization: string };
  poolName: string;
}

export interface JobBody {
  pool: string;
  commands?: string[];
  [key: string]: unknown;
}

export async function createPool(t: TestApp, user: TestUser, name = `pool-${randomBytes(3).toString('hex')}`): Promise<TestPool> {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/pools', headers: user.headers, payload: { name } });
  expect(res.statusCode, res.body).toBe(201);
  const body = res.json<{ id: string; name: string; registration_token: string }>();
  return { name: body.name, id: body.id, registrationToken: body.registration_token };
}

export async function registerAgent(
  t: TestApp,
  pool: TestPool,
  opts: { name?: string; tags?: Record<string, string>; max_concurrency?: number } = {},
): Promise<TestAgent> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/agents',
    headers: { authorization: `Bearer ${pool.registrationToken}` },
    payload: {
      name: opts.name ?? `agent-${randomBytes(3).toString('hex')}`,
      tags: opts.tags,
      max_concurrency: opts.max_concurrency,
    },
  });
  expect(res.statusCode, res.body).toBe(201);
  const body = res.json<{ agent: { id: string }; token: string }>();
  return { id: body.agent.id, token: body.token, headers: { authorization: `Bearer ${body.token}` }, poolName: pool.name };
}

export interface JobJson {
  id: string;
  state: string;
  priority: string;
  attempt: number;
  lease_token?: string;
  [key: string]: unknown;
}

export async function enqueue(t: TestApp, user: TestUser, body: JobBody): Promise<JobJson> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/jobs',
    headers: user.headers,
    payload: { commands: ['true'], ...body },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<JobJson>();
}

export async function enqueueBatch(t: TestApp, user: TestUser, jobs: JobBody[]): Promise<JobJson[]> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/jobs/batch',
    headers: user.headers,
    payload: { jobs: jobs.map((j) => ({ commands: ['true'], ...j })) },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ jobs: JobJson[] }>().jobs;
}

/** Claims without waiting; [] when there is nothing. */
export async function claim(t: TestApp, agent: TestAgent, max = 1, waitSeconds = 0): Promise<JobJson[]> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/queue/claim',
    headers: agent.headers,
    payload: { max, wait_seconds: waitSeconds },
  });
  if (res.statusCode === 204) return [];
  expect(res.statusCode, res.body).toBe(200);
  return res.json<{ jobs: JobJson[] }>().jobs;
}

export async function report(
  t: TestApp,
  agent: TestAgent,
  job: { id: string; lease_token?: string },
  action: 'start' | 'complete' | 'fail',
  body: Record<string, unknown> = {},
) {
  return t.app.inject({
    method: 'POST',
    url: `/api/v1/jobs/${job.id}/${action}`,
    headers: agent.headers,
    payload: { lease_token: job.lease_token, ...body },
  });
}

/** One batched report (`POST /queue/reports`): the same action for every job. */
export async function reportAll(
  t: TestApp,
  agent: TestAgent,
  jobs: readonly { id: string; lease_token?: string }[],
  action: 'start' | 'complete' | 'fail',
) {
  return t.app.inject({
    method: 'POST',
    url: '/api/v1/queue/reports',
    headers: agent.headers,
    payload: { reports: jobs.map((j) => ({ job_id: j.id, lease_token: j.lease_token, action })) },
  });
}

export async function getJob(t: TestApp, user: TestUser, id: string): Promise<JobJson> {
  const res = await t.app.inject({ method: 'GET', url: `/api/v1/jobs/${id}`, headers: user.headers });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<JobJson>();
}

/** Runs the reaper for the user's organization (admin endpoint). */
export async function runMaintenance(t: TestApp, admin: TestUser) {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/queue/maintenance/requeue-expired', headers: admin.headers });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<{ promoted: number; agents_lost: number; leases_expired: number; timed_out: number; cancels_forced: number }>();
}

/** Time travel for the reaper: makes a job's retry due now (as if its backoff had passed). */
export async function makeDue(t: TestApp, jobId: string): Promise<void> {
  await t.deps.db.query("UPDATE jobs SET run_at = now() - interval '1 second' WHERE id = $1 AND state = 'scheduled'", [jobId]);
}
