// Hand-ins of several agents in one statement: requests that arrive while their pool's
// statement is in flight go out together, each agent gets what a claim of its own would
// have given it (in arrival order), its audit events name it, and one request's failure
// or foreign report stays its own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import {
  claim,
  createPool,
  enqueue,
  enqueueBatch,
  registerAgent,
  type JobJson,
  type TestAgent,
  type TestPool,
} from '../../../test/helpers/queue.js';
import type { Queryable } from '../../platform/db/index.js';
import { handIn, type HandIn } from './handins.queries.js';
import { createHandIns, type HandInRequest, type HandIns } from './queue.handins.js';

let t: TestApp;
let owner: TestUser;
let pool: TestPool;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
  pool = await createPool(t, owner, 'hand-ins');
});
afterAll(() => t.close());

const isHandIn = (sql: string) => sql.startsWith('WITH asks AS');

/**
 * The real database, with the first hand-in statement held until `release` (so the next
 * requests queue behind it) and every hand-in statement's agents recorded.
 */
function gatedDb() {
  const statements: string[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let reached!: () => void;
  const firstReached = new Promise<void>((resolve) => (reached = resolve));
  const db: Queryable = {
    exec: t.deps.db.exec,
    async query(sql, params) {
      if (isHandIn(sql)) {
        statements.push(params![0] as string[]);
        if (statements.length === 1) {
          reached();
          await gate;
        }
      }
      return t.deps.db.query(sql, params);
    },
  };
  return { db, statements, release, firstReached };
}

/** The runtime's hand-ins over `db`, telling `onSubmit` of each request as it comes in. */
function useHandIns(db: Queryable, onSubmit: (r: HandInRequest) => void): () => void {
  const original = t.deps.queue.handIns;
  const inner = createHandIns(db);
  const wrapped: HandIns = {
    submit(request) {
      const outcome = inner.submit(request);
      onSubmit(request);
      return outcome;
    },
  };
  t.deps.queue.handIns = wrapped;
  return () => (t.deps.queue.handIns = original);
}

function fusedClaim(agent: TestAgent, reports: JobJson[], requestId: string) {
  return t.app.inject({
    method: 'POST',
    url: '/api/v1/queue/claim',
    headers: { ...agent.headers, 'x-request-id': requestId },
    payload: { start: true, reports: reports.map((j) => ({ job_id: j.id, lease_token: j.lease_token, action: 'complete' })) },
  });
}

async function auditOf(jobId: string, action: string) {
  const { rows } = await t.deps.db.query<{ actor_id: string; request_id: string }>(
    `SELECT actor_id, request_id FROM audit_events WHERE resource_id = $1 AND action = $2`,
    [jobId, action],
  );
  return rows;
}

/** A hand-in of `agentId` asking for `max` jobs, handing in `completions`, as the claim route makes it. */
function handInRequest(agentId: string, max: number, completions: HandIn['completions'] = []): HandInRequest {
  return {
    agentId,
    actor: { actor: { type: 'agent', id: agentId, label: 'test' }, requestId: 'r', clientIp: null },
    completions,
    max,
    orgId: owner.orgId,
    poolId: pool.id,
    start: true,
    leaseSeconds: 30,
  };
}

describe('hand-ins gathered into one statement', () => {
  it('requests that arrive while one is in flight share the next statement; each gets its own claim, in arrival order', async () => {
    const linux = { os: 'linux' };
    const [first, b, c, d] = await Promise.all(Array.from({ length: 4 }, () => registerAgent(t, pool, { tags: linux })));
    const gpu = await registerAgent(t, pool, { tags: { gpu: 'true' } });
    const agents = [first!, b!, c!, d!, gpu];
    // Each agent holds one running job to hand in.
    const held = new Map<TestAgent, JobJson>();
    for (const agent of agents) {
      await enqueue(t, owner, { pool: pool.name, tags: agent === gpu ? { gpu: 'true' } : linux });
      const [job] = await claim(t, agent);
      held.set(agent, job!);
    }
    const next = await enqueueBatch(t, owner, [
      { pool: pool.name, name: 'low', priority: 'LOW', tags: linux },
      { pool: pool.name, name: 'critical', priority: 'CRITICAL', tags: linux },
      { pool: pool.name, name: 'normal', priority: 'NORMAL', tags: linux },
      { pool: pool.name, name: 'high', priority: 'HIGH', tags: linux },
      { pool: pool.name, name: 'gpu', priority: 'LOW', tags: { gpu: 'true' } },
      { pool: pool.name, name: 'gpu-next', priority: 'LOW', tags: { gpu: 'true' } },
    ]);
    const byName = new Map(next.map((j) => [j.name as string, j.id]));

    const gated = gatedDb();
    const submitted: string[] = [];
    let allIn!: () => void;
    const allSubmitted = new Promise<void>((resolve) => (allIn = resolve));
    const restore = useHandIns(gated.db, (r) => {
      submitted.push(r.agentId);
      if (submitted.length === agents.length) allIn();
    });
    try {
      const answers = [fusedClaim(first!, [held.get(first!)!], 'req-first')];
      await gated.firstReached;
      // b arrives first among the waiting, so its pool and tags lead the shared statement;
      // the gpu agent's tags differ, so it claims on its own once the statement is done.
      for (const agent of [b!, gpu, c!, d!]) {
        answers.push(fusedClaim(agent, [held.get(agent)!], `req-${agent.id}`));
        await expect.poll(() => submitted.includes(agent.id)).toBe(true);
      }
      await allSubmitted;
      gated.release();
      const [firstRes, bRes, gpuRes, cRes, dRes] = await Promise.all(answers);

      expect(gated.statements).toEqual([[first!.id], [b!.id, gpu.id, c!.id, d!.id]]);
      const got = (res: Awaited<(typeof answers)[number]>) => {
        expect(res.statusCode, res.body).toBe(200);
        const body = res.json<{ jobs: JobJson[]; results: { ok: boolean; state: string }[] }>();
        expect(body.results).toEqual([expect.objectContaining({ ok: true, state: 'completed' })]);
        return body.jobs.map((j) => j.id);
      };
      // The first request claimed alone, the best job; the linux agents of the shared
      // statement took the next ones in the order they asked.
      expect(got(firstRes!)).toEqual([byName.get('critical')]);
      expect(got(gpuRes!)).toEqual([byName.get('gpu')]);
      expect(got(bRes!)).toEqual([byName.get('high')]);
      expect(got(cRes!)).toEqual([byName.get('normal')]);
      expect(got(dRes!)).toEqual([byName.get('low')]);

      // Every event names the agent and the request it came from.
      for (const [agent, requestId] of [
        [b!, `req-${b!.id}`],
        [gpu, `req-${gpu.id}`],
      ] as const) {
        expect(await auditOf(held.get(agent)!.id, 'job.completed')).toEqual([{ actor_id: agent.id, request_id: requestId }]);
      }
      expect(await auditOf(byName.get('high')!, 'job.claimed')).toEqual([{ actor_id: b!.id, request_id: `req-${b!.id}` }]);
      expect(await auditOf(byName.get('gpu')!, 'job.claimed')).toEqual([{ actor_id: gpu.id, request_id: `req-${gpu.id}` }]);
    } finally {
      restore();
    }
  });

  it('12 agents handing in and claiming at once over 600 jobs: each job claimed and completed exactly once', async () => {
    const busy = await createPool(t, owner, 'hand-ins-busy');
    const agents = await Promise.all(Array.from({ length: 12 }, () => registerAgent(t, busy)));
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const batch = await enqueueBatch(
        t,
        owner,
        Array.from({ length: 200 }, () => ({ pool: busy.name })),
      );
      batch.forEach((j) => ids.add(j.id));
    }
    const sizes: number[] = [];
    const counting: Queryable = {
      exec: t.deps.db.exec,
      query(sql, params) {
        if (isHandIn(sql)) sizes.push((params![0] as string[]).length);
        return t.deps.db.query(sql, params);
      },
    };
    const restore = useHandIns(counting, () => undefined);
    const claimedBy = new Map<string, string>();
    let duplicates = 0;
    try {
      await Promise.all(
        agents.map(async (agent) => {
          let inHand: JobJson[] = await claim(t, agent);
          while (inHand.length > 0) {
            for (const job of inHand) {
              if (claimedBy.has(job.id)) duplicates++;
              claimedBy.set(job.id, agent.id);
            }
            const res = await fusedClaim(agent, inHand, `busy-${agent.id}`);
            expect(res.statusCode, res.body).toBe(200);
            const body = res.json<{ jobs: JobJson[]; results: { ok: boolean }[] }>();
            expect(body.results.every((r) => r.ok)).toBe(true);
            inHand = body.jobs;
          }
        }),
      );
    } finally {
      restore();
    }
    expect(duplicates).toBe(0);
    expect(new Set(claimedBy.keys())).toEqual(ids);
    const { rows } = await t.deps.db.query<{ state: string; n: number }>(
      `SELECT state, count(*)::int AS n FROM all_jobs WHERE pool_id = $1 GROUP BY state`,
      [busy.id],
    );
    expect(rows).toEqual([{ state: 'completed', n: 600 }]);
    const audited = await t.deps.db.query<{ action: string; n: number }>(
      `SELECT action, count(*)::int AS n FROM audit_events WHERE resource_id = ANY($1::text[]) GROUP BY action ORDER BY action`,
      [[...ids]],
    );
    expect(audited.rows).toEqual([
      { action: 'job.claimed', n: 600 },
      { action: 'job.completed', n: 600 },
      { action: 'job.queued', n: 600 },
    ]);
    // On PostgreSQL the agents' requests shared statements. Embedded PGlite runs a statement
    // on this thread, so requests hardly ever arrive while one is in flight.
    if (t.deps.db.kind === 'postgres') expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(sizes.length);
  });

  it('an agent whose tags differ from the statement’s first agent claims on its own', async () => {
    const linux = await registerAgent(t, pool, { tags: { os: 'linux' } });
    const gpu = await registerAgent(t, pool, { tags: { gpu: 'true' } });
    const [linuxJob, gpuJob] = await enqueueBatch(t, owner, [
      { pool: pool.name, tags: { os: 'linux' } },
      { pool: pool.name, tags: { gpu: 'true' } },
    ]);
    const [led, other] = await handIn(t.deps.db, [handInRequest(linux.id, 1), handInRequest(gpu.id, 1)], {
      leaseSeconds: 30,
      start: true,
    });
    expect(led).toMatchObject({ claimTried: true, completed: [] });
    expect(led!.claimed.map((j) => j.id)).toEqual([linuxJob!.id]);
    expect(other).toEqual({ claimTried: false, completed: [], claimed: [] });
    // Untouched by the statement: the gpu job is still there for its own claim.
    expect((await claim(t, gpu)).map((j) => j.id)).toEqual([gpuJob!.id]);
  });

  it('a completion of another agent’s job applies to nothing, and that agent is not claimed for', async () => {
    const [a, b] = await Promise.all([registerAgent(t, pool), registerAgent(t, pool)]);
    await enqueueBatch(t, owner, [{ pool: pool.name }, { pool: pool.name }]);
    const [aJob] = await claim(t, a);
    const [bJob] = await claim(t, b);
    await enqueue(t, owner, { pool: pool.name, name: 'up-next' });
    const completion = (job: JobJson) => ({ id: job.id, leaseToken: job.lease_token!, outputs: null });
    // a hands in b's job with b's lease; b hands in its own.
    const [forA, forB] = await handIn(
      t.deps.db,
      [handInRequest(a.id, 1, [completion(bJob!)]), handInRequest(b.id, 1, [completion(bJob!)])],
      { leaseSeconds: 30, start: true },
    );
    expect(forA).toEqual({ claimTried: false, completed: [], claimed: [] });
    expect(forB!.completed.map((j) => j.id)).toEqual([bJob!.id]);
    expect(forB!.claimed.map((j) => j.name)).toEqual(['up-next']);
    // a's own job is still held under a's lease.
    const { rows } = await t.deps.db.query(`SELECT state, agent_id FROM jobs WHERE id = $1`, [aJob!.id]);
    expect(rows).toEqual([{ state: 'claimed', agent_id: a.id }]);
  });

  it('a shared statement that fails is retried request by request: only the bad request fails', async () => {
    const gated = gatedDb();
    const handIns = createHandIns(gated.db);
    const agents = await Promise.all(Array.from({ length: 3 }, () => registerAgent(t, pool)));
    const first = handIns.submit(handInRequest(agents[0]!.id, 0));
    await gated.firstReached;
    const good = handIns.submit(handInRequest(agents[1]!.id, 0));
    const bad = handIns.submit(handInRequest('not-a-uuid', 0));
    gated.release();
    // Settled together, so the bad request's rejection is handled whenever it comes.
    const [firstOutcome, goodOutcome, badOutcome] = await Promise.allSettled([first, good, bad]);
    expect(firstOutcome).toMatchObject({ status: 'fulfilled', value: { claimTried: true } });
    expect(goodOutcome).toMatchObject({ status: 'fulfilled', value: { claimTried: true, claimed: [] } });
    expect(badOutcome).toMatchObject({
      status: 'rejected',
      reason: expect.objectContaining({ message: expect.stringMatching(/uuid/) }),
    });
    expect(gated.statements).toEqual([[agents[0]!.id], [agents[1]!.id, 'not-a-uuid'], [agents[1]!.id], ['not-a-uuid']]);
  });

  it('a request that moves many jobs goes out on its own at once, even while its lane is busy', async () => {
    const gated = gatedDb();
    const handIns = createHandIns(gated.db);
    const [a, b] = await Promise.all([registerAgent(t, pool), registerAgent(t, pool)]);
    const held = handIns.submit(handInRequest(a.id, 1));
    await gated.firstReached;
    await expect(handIns.submit(handInRequest(b.id, 50))).resolves.toMatchObject({ claimTried: true });
    expect(gated.statements).toEqual([[a.id], [b.id]]);
    gated.release();
    await held;
  });

  it('an agent’s second request waits for the next statement', async () => {
    const gated = gatedDb();
    const handIns = createHandIns(gated.db);
    const [a, b] = await Promise.all([registerAgent(t, pool), registerAgent(t, pool)]);
    const outcomes = [handIns.submit(handInRequest(a.id, 0))];
    await gated.firstReached;
    outcomes.push(
      handIns.submit(handInRequest(a.id, 0)),
      handIns.submit(handInRequest(b.id, 0)),
      handIns.submit(handInRequest(a.id, 0)),
    );
    gated.release();
    await Promise.all(outcomes);
    expect(gated.statements).toEqual([[a.id], [a.id, b.id], [a.id]]);
  });
});
