import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import {
  claim,
  createPool,
  enqueue,
  enqueueBatch,
  registerAgent,
  reportAll,
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
  pool = await createPool(t, owner, 'claims');
});
afterAll(() => t.close());

async function completeAll(agent: TestAgent, jobs: { id: string; lease_token?: string }[]) {
  if (jobs.length === 0) return;
  const res = await reportAll(t, agent, jobs, 'complete');
  expect(res.statusCode, res.body).toBe(200);
  expect(res.json<{ results: { ok: boolean }[] }>().results.every((r) => r.ok)).toBe(true);
}

describe('claims', () => {
  it('priority order, FIFO within a priority, tags respected', async () => {
    const agent = await registerAgent(t, pool, { max_concurrency: 50, tags: { os: 'linux' } });
    const jobs = await enqueueBatch(t, owner, [
      { pool: 'claims', name: 'low-1', priority: 'LOW' },
      { pool: 'claims', name: 'normal-1' },
      { pool: 'claims', name: 'gpu', priority: 'CRITICAL', tags: { gpu: 'true' } },
      { pool: 'claims', name: 'high-1', priority: 'HIGH' },
      { pool: 'claims', name: 'normal-2' },
      { pool: 'claims', name: 'critical-1', priority: 'CRITICAL', tags: { os: 'linux' } },
      { pool: 'claims', name: 'low-2', priority: 'LOW' },
      { pool: 'claims', name: 'high-2', priority: 'HIGH' },
    ]);
    expect(jobs).toHaveLength(8);
    const order: string[] = [];
    for (;;) {
      const [job] = await claim(t, agent);
      if (!job) break;
      order.push(job.name as string);
    }
    // The gpu job needs a tag this agent lacks: it stays queued.
    expect(order).toEqual(['critical-1', 'high-1', 'high-2', 'normal-1', 'normal-2', 'low-1', 'low-2']);
    const gpu = jobs.find((j) => j.name === 'gpu')!;
    const cancel = await t.app.inject({ method: 'POST', url: `/api/v1/jobs/${gpu.id}/cancel`, headers: owner.headers });
    expect(cancel.statusCode).toBe(200);
    await completeAll(agent, []);
  });

  it('an agent never holds more jobs than its concurrency', async () => {
    const agent = await registerAgent(t, pool, { max_concurrency: 3 });
    await enqueueBatch(
      t,
      owner,
      Array.from({ length: 5 }, () => ({ pool: 'claims' })),
    );
    const first = await claim(t, agent, 10);
    expect(first).toHaveLength(3);
    expect(await claim(t, agent, 10)).toEqual([]);
    await completeAll(agent, first);
    const rest = await claim(t, agent, 10);
    expect(rest).toHaveLength(2);
    await completeAll(agent, rest);
  });

  it('8 concurrent claimers over 1,000 jobs: every job claimed exactly once', async () => {
    const claimPool = await createPool(t, owner, 'race');
    const agents = await Promise.all(Array.from({ length: 8 }, () => registerAgent(t, claimPool, { max_concurrency: 20 })));
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const batch = await enqueueBatch(
        t,
        owner,
        Array.from({ length: 250 }, (_, n) => ({ pool: 'race', name: `job-${i * 250 + n}` })),
      );
      ids.push(...batch.map((j) => j.id));
    }
    const claimedBy = new Map<string, number>();
    let duplicates = 0;
    await Promise.all(
      agents.map(async (agent, index) => {
        for (;;) {
          const jobs = await claim(t, agent, 10);
          if (jobs.length === 0) return;
          for (const job of jobs) {
            if (claimedBy.has(job.id)) duplicates++;
            claimedBy.set(job.id, index);
          }
          await completeAll(agent, jobs);
        }
      }),
    );
    expect(duplicates).toBe(0);
    expect(claimedBy.size).toBe(1000);
    expect(new Set(ids)).toEqual(new Set(claimedBy.keys()));
    // The work was shared (claims interleaved), not drained by one agent.
    expect(new Set(claimedBy.values()).size).toBeGreaterThan(1);
  });

  it('a paused agent gets nothing; resumed, it claims again', async () => {
    const agent = await registerAgent(t, pool, { max_concurrency: 2 });
    const pause = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/agents/${agent.id}`,
      headers: owner.headers,
      payload: { status: 'paused' },
    });
    expect(pause.json()).toMatchObject({ status: 'paused' });
    const job = await enqueue(t, owner, { pool: 'claims' });
    expect(await claim(t, agent)).toEqual([]);
    await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/agents/${agent.id}`,
      headers: owner.headers,
      payload: { status: 'active' },
    });
    const [mine] = await claim(t, agent);
    expect(mine!.id).toBe(job.id);
    await completeAll(agent, [mine!]);
  });
});

describe('long-poll claims', () => {
  function nextReady(): Promise<BusEvent> {
    return new Promise((resolve) => {
      const off = t.deps.bus.subscribe('queue:*', (event) => {
        off();
        resolve(event);
      });
    });
  }

  it('answers within 100 ms of a matching enqueue, and a non-matching enqueue does not wake it', async () => {
    const waitPool = await createPool(t, owner, 'waiting');
    const agent = await registerAgent(t, waitPool, { tags: { os: 'linux' } });
    let answeredAt = 0;
    const parked = claim(t, agent, 1, 20).then((jobs) => {
      answeredAt = performance.now();
      return jobs;
    });
    await expect.poll(() => t.deps.queue.wakeups.waiting(), { timeout: 5_000, interval: 5 }).toBe(1);

    const other = nextReady();
    await enqueue(t, owner, { pool: 'waiting', tags: { os: 'windows' } });
    await other; // the wake-up was delivered (local delivery runs before this subscriber)…
    expect(t.deps.queue.wakeups.waiting()).toBe(1); // …and the claim is still parked
    expect(answeredAt).toBe(0);

    const enqueuedAt = performance.now();
    const matching = await enqueue(t, owner, { pool: 'waiting', tags: { os: 'linux' } });
    const jobs = await parked;
    expect(jobs.map((j) => j.id)).toEqual([matching.id]);
    expect(answeredAt - enqueuedAt).toBeLessThan(100);
    await completeAll(agent, jobs);
  });

  it('a parked claim ends with 204 at its deadline', async () => {
    const quiet = await createPool(t, owner, 'quiet');
    const agent = await registerAgent(t, quiet);
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/queue/claim',
      headers: agent.headers,
      payload: { max: 1, wait_seconds: 1 },
    });
    expect(res.statusCode).toBe(204);
    expect(t.deps.queue.wakeups.waiting()).toBe(0);
  });

  it('a client that hangs up ends its long-poll; a paused agent never parks; neither steals a wake-up', async () => {
    const hangPool = await createPool(t, owner, 'hangups');
    const gone = await registerAgent(t, hangPool);
    const paused = await registerAgent(t, hangPool);
    const live = await registerAgent(t, hangPool);
    const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const request = http.request(`${url}/api/v1/queue/claim`, {
      method: 'POST',
      headers: { ...gone.headers, 'content-type': 'application/json' },
    });
    request.on('error', () => {});
    request.end(JSON.stringify({ max: 1, wait_seconds: 30 }));
    await expect.poll(() => t.deps.queue.wakeups.waiting(), { timeout: 5_000, interval: 5 }).toBe(1);
    request.destroy();
    await expect.poll(() => t.deps.queue.wakeups.waiting(), { timeout: 5_000, interval: 5 }).toBe(0);

    await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/agents/${paused.id}`,
      headers: owner.headers,
      payload: { status: 'paused' },
    });
    const pausedClaim = claim(t, paused, 1, 3);
    const liveClaim = claim(t, live, 1, 20);
    await expect.poll(() => t.deps.queue.wakeups.waiting(), { timeout: 5_000, interval: 5 }).toBe(1);
    // The only waiter is the live agent's, so the wake-up is its: a stolen one would leave
    // it parked for its whole poll.
    const job = await enqueue(t, owner, { pool: 'hangups' });
    const [got] = await liveClaim;
    expect(got!.id).toBe(job.id);
    expect(await pausedClaim).toEqual([]);
    await completeAll(live, [got!]);
  });
});
