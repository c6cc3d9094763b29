// The scheduler with a fake clock: two server instances on one database tick at the same
// fake moments, and each due occurrence starts exactly one run.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAppOn, testConfig, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { createTestDb, usingPostgres, type TestDb } from '../../../test/helpers/db.js';
import { createPostgresDb } from '../../platform/db/postgres.js';
import type { AppDeps } from '../../platform/deps.js';
import type { PipelineDefinition } from '../pipelines/pipeline.model.js';
import { insertPipelineVersion } from '../runs/runs.queries.js';
import { fireDueSchedules, schedulerHousekeeping } from './schedules.scheduler.js';

const definition: PipelineDefinition = {
  env: {},
  steps: [
    {
      type: 'command',
      key: 'report',
      label: 'Nightly report',
      needs: [],
      commands: ['make report'],
      pool: 'ci',
      tags: {},
      env: {},
      artifacts: [],
    },
  ],
};

let testDb: TestDb;
let a: TestApp;
let b: TestApp;
let owner: TestUser;

// One configuration (the same instance secret) for both, as replicas of one installation.
const config = testConfig();

/** A server instance (deps + app) on the shared test database. */
async function instance(db: TestDb['db'], ownsDb: boolean): Promise<TestApp> {
  const replica = await buildAppOn(config, db);
  return {
    ...replica,
    async close() {
      await replica.close();
      if (ownsDb) await db.close();
    },
  };
}

beforeAll(async () => {
  testDb = await createTestDb();
  a = await instance(testDb.db, false);
  // On PostgreSQL the second instance has its own connection pool, as another replica
  // would; PGlite is one process's database, so both share it.
  b = usingPostgres ? await instance(createPostgresDb(testDb.url!, 10), true) : await instance(testDb.db, false);
  owner = await createOrgAndLogin(a);
});
afterAll(async () => {
  await b?.close();
  await a?.close();
  await testDb?.drop();
});

async function project(withPipeline = true): Promise<string> {
  const res = await a.app.inject({
    method: 'POST',
    url: '/api/v1/projects',
    headers: owner.headers,
    payload: { name: `Scheduled ${randomBytes(3).toString('hex')}` },
  });
  const id = res.json<{ id: string }>().id;
  if (withPipeline) {
    await insertPipelineVersion(a.deps.db, {
      orgId: owner.orgId,
      projectId: id,
      source: '# test',
      definition,
      createdBy: 'test',
    });
  }
  return id;
}

interface ScheduleJson {
  id: string;
  next_run_at: string;
  last_outcome: string | null;
  last_error: string | null;
  last_run: { id: string; number: number } | null;
  skipped_count: number;
}

async function schedule(projectId: string, body: Record<string, unknown>): Promise<ScheduleJson> {
  const res = await a.app.inject({
    method: 'POST',
    url: `/api/v1/projects/${projectId}/schedules`,
    headers: owner.headers,
    payload: { name: 'every five minutes', cron: '*/5 * * * *', branch: 'main', ...body },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<ScheduleJson>();
}

const read = async (id: string) =>
  (await a.app.inject({ method: 'GET', url: `/api/v1/schedules/${id}`, headers: owner.headers })).json<ScheduleJson>();

async function firings(id: string) {
  const res = await b.app.inject({ method: 'GET', url: `/api/v1/schedules/${id}/firings`, headers: owner.headers });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<{ items: { due_at: string; outcome: string; missed: number; run_id: string | null; error: string | null }[] }>()
    .items;
}

async function runsOf(projectId: string) {
  const res = await a.app.inject({ method: 'GET', url: `/api/v1/projects/${projectId}/runs`, headers: owner.headers });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<{ items: { id: string; trigger: string; branch: string | null; created_by: string }[] }>().items;
}

async function runCount(projectId: string): Promise<number> {
  const { rows } = await a.deps.db.query<{ n: number }>('SELECT count(*)::int AS n FROM runs WHERE project_id = $1', [projectId]);
  return rows[0]!.n;
}

/** Both instances tick at the same fake moment, three times each, all at once. */
async function tickBoth(now: Date): Promise<void> {
  const deps: AppDeps[] = [a.deps, b.deps, a.deps, b.deps, a.deps, b.deps];
  await Promise.all(deps.map((d) => fireDueSchedules(d, now)));
}

const plus = (iso: string, ms: number) => new Date(Date.parse(iso) + ms);

describe('scheduler', () => {
  it('fires each due time exactly once across two instances ticking together', async () => {
    const projectId = await project();
    const s = await schedule(projectId, {});
    const due = s.next_run_at;
    const counts: number[] = [];
    for (const ms of [-1_000, 0, 500, 1_000, 299_000, 300_000, 300_001, 301_000]) {
      await tickBoth(plus(due, ms));
      counts.push(await runCount(projectId));
    }
    expect(counts).toEqual([0, 1, 1, 1, 1, 2, 2, 2]);

    const runs = await runsOf(projectId);
    expect(runs).toHaveLength(2);
    expect(runs.every((r) => r.trigger === 'schedule' && r.branch === 'main' && r.created_by === `system:schedule:${s.id}`)).toBe(
      true,
    );
    const fired = await firings(s.id);
    expect(fired.map((f) => [f.due_at, f.outcome])).toEqual([
      [plus(due, 300_000).toISOString(), 'started'],
      [due, 'started'],
    ]);
    expect(new Set(fired.map((f) => f.run_id))).toEqual(new Set(runs.map((r) => r.id)));

    const after = await read(s.id);
    expect(after).toMatchObject({ last_outcome: 'started', next_run_at: plus(due, 600_000).toISOString() });
    expect(after.last_run?.id).toBe(fired[0]!.run_id);
    await expectAuditEvent(a, { orgId: owner.orgId, action: 'schedule.fired', resourceId: s.id });
  });

  it('skip policy: after downtime the missed occurrences are counted, not run', async () => {
    const projectId = await project();
    const s = await schedule(projectId, { missed: 'skip' });
    // Down for an hour; back two minutes after the latest occurrence (too late for it too).
    await tickBoth(plus(s.next_run_at, 62 * 60_000));
    expect(await runCount(projectId)).toBe(0);
    const after = await read(s.id);
    expect(after).toMatchObject({
      skipped_count: 13,
      last_outcome: 'skipped',
      next_run_at: plus(s.next_run_at, 65 * 60_000).toISOString(),
    });
    expect(await firings(s.id)).toMatchObject([
      { outcome: 'skipped', missed: 13, due_at: plus(s.next_run_at, 60 * 60_000).toISOString() },
    ]);
    await expectAuditEvent(a, { orgId: owner.orgId, action: 'schedule.skipped', resourceId: s.id });
  });

  it('run_once policy: one run for all the missed occurrences', async () => {
    const projectId = await project();
    const s = await schedule(projectId, { missed: 'run_once' });
    await tickBoth(plus(s.next_run_at, 62 * 60_000));
    expect(await runCount(projectId)).toBe(1);
    expect(await firings(s.id)).toMatchObject([{ outcome: 'started', missed: 13 }]);
    // And nothing more until the next occurrence.
    await tickBoth(plus(s.next_run_at, 64 * 60_000));
    expect(await runCount(projectId)).toBe(1);
  });

  it('records why a run could not start on the firing and the schedule, and goes on', async () => {
    const projectId = await project(false);
    const s = await schedule(projectId, {});
    await tickBoth(new Date(s.next_run_at));
    const [firing] = await firings(s.id);
    expect(firing).toMatchObject({ outcome: 'failed', run_id: null, error: expect.stringMatching(/no pipeline/) });
    expect(await read(s.id)).toMatchObject({ last_outcome: 'failed', last_error: expect.stringMatching(/no pipeline/) });
    expect((await read(s.id)).next_run_at).toBe(plus(s.next_run_at, 300_000).toISOString());
  });

  it('never fires a disabled schedule or one of a deleted project', async () => {
    const projectId = await project();
    const off = await schedule(projectId, { name: 'off', enabled: false });
    expect(off.next_run_at).toBeNull();
    const on = await schedule(projectId, { name: 'on' });
    await a.app.inject({ method: 'DELETE', url: `/api/v1/projects/${projectId}`, headers: owner.headers });
    await tickBoth(plus(on.next_run_at, 1_000));
    expect(await runCount(projectId)).toBe(0);
    const { rows } = await a.deps.db.query('SELECT 1 FROM schedule_firings WHERE schedule_id = ANY($1::uuid[])', [
      [off.id, on.id],
    ]);
    expect(rows).toHaveLength(0);
  });

  it('settles a claim its scheduler never settled: linked to the run it made, failed otherwise', async () => {
    const projectId = await project();
    const s = await schedule(projectId, { name: 'interrupted' });
    const firedAt = new Date(Date.now() - 10 * 60_000);
    const claim = (due: Date) =>
      a.deps.db.query(
        "INSERT INTO schedule_firings (schedule_id, due_at, org_id, outcome, fired_at) VALUES ($1, $2, $3, 'claimed', $4)",
        [s.id, due, owner.orgId, firedAt],
      );
    await a.deps.db.query("UPDATE schedules SET last_outcome = 'claimed' WHERE id = $1", [s.id]);
    // One claim whose scheduler died before creating the run, one that died just after.
    await claim(new Date('2020-01-01T00:00:00Z'));
    await claim(new Date('2020-01-01T00:05:00Z'));
    const run = await a.app.inject({
      method: 'POST',
      url: `/api/v1/projects/${projectId}/runs`,
      headers: owner.headers,
      payload: {},
    });
    const runId = run.json<{ id: string }>().id;
    await a.deps.db.query('UPDATE runs SET created_by = $2, created_at = $3 WHERE id = $1', [
      runId,
      `system:schedule:${s.id}`,
      new Date(firedAt.getTime() + 2_000),
    ]);
    await schedulerHousekeeping(a.deps);
    const settled = await firings(s.id);
    expect(settled).toHaveLength(2);
    expect(settled.filter((f) => f.outcome === 'started').map((f) => f.run_id)).toEqual([runId]);
    expect(settled.filter((f) => f.outcome === 'failed').map((f) => f.error)).toEqual([
      'the server stopped before the run was created',
    ]);
    expect(settled.some((f) => f.outcome === 'claimed')).toBe(false);
    expect(await read(s.id)).toMatchObject({ last_outcome: 'started', last_run: { id: runId } });
  });
});
