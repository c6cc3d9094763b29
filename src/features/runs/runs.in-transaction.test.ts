// A run moves in the same commit as what moved it: an agent's report of a step's job, a
// person's answer to a block step. No wait on the run runtime here (no `runs.idle()`) unless
// a test is about the fallback to it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../../../test/helpers/app.js';
import type { TestUser } from '../../../test/helpers/auth.js';
import { usingPostgres } from '../../../test/helpers/db.js';
import { blockStep, commandStep } from '../../../test/helpers/pipelines.js';
import { runsFixture } from '../../../test/helpers/runs.js';
import { claim, report, reportAll, type JobJson, type TestAgent } from '../../../test/helpers/queue.js';
import type { AuthContext } from '../../platform/auth.js';
import type { StepDefinition } from '../pipelines/pipeline.model.js';
import type { StepDriver } from './runs.drivers.js';
import { lockRun } from './runs.queries.js';
import { createRun, getRun } from './runs.service.js';

let t: TestApp;
let owner: TestUser;
let auth: AuthContext;
let agent: TestAgent;
let projectId: string;

beforeAll(async () => {
  ({ t, owner, auth, agent, projectId } = await runsFixture('Tx'));
});
afterAll(() => t.close());

const command = (key: string, needs: string[] = []) => commandStep(key, { needs });
const block = (key: string, needs: string[]) => blockStep(key, { needs });

const start = (...steps: StepDefinition[]) =>
  createRun(t.deps, auth, {
    projectId,
    pipelineVersionId: null,
    definition: { env: {}, steps },
    trigger: {},
  });

const stepOf = async (runId: string, key: string) => (await getRun(t.deps, auth, runId)).steps.find((s) => s.key === key)!;

async function claimJobOf(runId: string, key: string): Promise<JobJson> {
  const jobId = (await stepOf(runId, key)).job_id;
  const job = (await claim(t, agent, 8)).find((j) => j.id === jobId);
  expect(job, `the job of ${key} is claimable`).toBeDefined();
  return job!;
}

/** When one job ended and when another was created, as the database recorded them. */
async function endedAndCreated(endedJob: string, createdJob: string) {
  const { rows } = await t.deps.db.query<{ finished_at: Date; created_at: Date }>(
    `SELECT (SELECT finished_at FROM job_history WHERE id = $1) AS finished_at,
            (SELECT created_at FROM all_jobs WHERE id = $2 LIMIT 1) AS created_at`,
    [endedJob, createdJob],
  );
  return rows[0]!;
}

describe('advancing a run with what moved it', () => {
  it("queues a step's dependents in the same commit as the agent's report of its end", async () => {
    const run = await start(command('build'), command('test', ['build']));
    const build = await claimJobOf(run.id, 'build');
    const res = await report(t, agent, build, 'complete', { exit_status: 0 });
    expect(res.statusCode, res.body).toBe(200);

    const test = await stepOf(run.id, 'test');
    expect((await stepOf(run.id, 'build')).state).toBe('passed');
    expect(test.state).toBe('running');
    // now() is the transaction's start: equal times mean one transaction did both.
    const { finished_at, created_at } = await endedAndCreated(build.id, test.job_id!);
    expect(created_at.getTime()).toBe(finished_at.getTime());
    // Queued with other runs' jobs in one statement, its audit event still names its run.
    const { rows } = await t.deps.db.query<{ action: string; request_id: string; actor_id: string }>(
      `SELECT action, request_id, actor_id FROM audit_events WHERE resource_type = 'job' AND resource_id = $1`,
      [test.job_id],
    );
    expect(rows).toEqual([{ action: 'job.queued', request_id: `run:${run.id}`, actor_id: 'pipeline' }]);
  });

  it("a step's completion handed in with a claim queues its dependents, and the claim takes them, in one commit", async () => {
    const run = await start(command('build'), command('test', ['build']));
    const build = await claimJobOf(run.id, 'build');
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/queue/claim',
      headers: agent.headers,
      payload: { max: 1, start: true, reports: [{ job_id: build.id, lease_token: build.lease_token, action: 'complete' }] },
    });
    expect(res.statusCode, res.body).toBe(200);
    const answer = res.json<{ jobs: JobJson[]; results: { job_id: string; ok: boolean; state: string }[] }>();
    expect(answer.results).toEqual([{ job_id: build.id, ok: true, state: 'completed', attempt: 1 }]);
    const test = await stepOf(run.id, 'test');
    expect(answer.jobs.map((j) => [j.id, j.state])).toEqual([[test.job_id, 'running']]);
    const { rows } = await t.deps.db.query<{ same: boolean }>(
      'SELECT (SELECT finished_at FROM job_history WHERE id = $1) = (SELECT claimed_at FROM jobs WHERE id = $2) AS same',
      [build.id, test.job_id],
    );
    expect(rows[0]!.same).toBe(true);
    await reportAll(t, agent, answer.jobs, 'complete');
  });

  it('skips the dependents and fails the run in the commit of a failing report', async () => {
    const run = await start(command('build'), command('test', ['build']));
    const build = await claimJobOf(run.id, 'build');
    expect((await report(t, agent, build, 'complete', { exit_status: 3 })).statusCode).toBe(200);
    const now = await getRun(t.deps, auth, run.id);
    expect(now.state).toBe('failed');
    expect(now.steps.map((s) => `${s.key}:${s.state}`)).toEqual(['build:failed', 'test:skipped']);
  });

  it("queues the next step in the same commit as a person's answer to a block step", async () => {
    const run = await start(command('build'), block('approve', ['build']), command('ship', ['approve']));
    await report(t, agent, await claimJobOf(run.id, 'build'), 'complete', { exit_status: 0 });
    const approvalId = (await stepOf(run.id, 'approve')).approval_id!;
    const res = await t.app.inject({
      method: 'POST',
      url: `/api/v1/approvals/${approvalId}/respond`,
      headers: owner.headers,
      payload: { decision: 'approve' },
    });
    expect(res.statusCode, res.body).toBe(200);

    const ship = await stepOf(run.id, 'ship');
    expect(ship.state).toBe('running');
    const { rows } = await t.deps.db.query<{ resolved_at: Date; created_at: Date }>(
      `SELECT a.resolved_at, j.created_at FROM approvals a, jobs j WHERE a.id = $1 AND j.id = $2`,
      [approvalId, ship.job_id],
    );
    expect(rows[0]!.created_at.getTime()).toBe(rows[0]!.resolved_at.getTime());
  });

  it('an advance that fails is undone on its own, the report stands, and the runtime advances the run after', async () => {
    const drivers = t.deps.runs.drivers as { block?: StepDriver<never> };
    const real = drivers.block!;
    let failures = 0;
    drivers.block = {
      ...real,
      async start(ctx) {
        const started = await real.start(ctx);
        if (failures++ === 0) throw new Error('the first start breaks after writing');
        return started;
      },
    };
    try {
      const run = await start(command('build'), block('approve', ['build']));
      const res = await report(t, agent, await claimJobOf(run.id, 'build'), 'complete', { exit_status: 0 });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json<{ state: string }>().state).toBe('completed');
      await t.deps.runs.idle();

      expect(failures).toBe(2);
      const approve = await stepOf(run.id, 'approve');
      expect(approve.state).toBe('blocked');
      // The broken attempt's approval was rolled back with its savepoint: one remains.
      const { rows } = await t.deps.db.query<{ id: string }>('SELECT id FROM approvals WHERE run_id = $1', [run.id]);
      expect(rows.map((r) => r.id)).toEqual([approve.approval_id]);
    } finally {
      drivers.block = real;
    }
  });

  it('one run whose advance fails does not hold up another ended by the same report', async () => {
    const drivers = t.deps.runs.drivers as { block?: StepDriver<never> };
    const real = drivers.block!;
    const bad = await start(command('build'), block('approve', ['build']));
    const good = await start(command('build'), command('test', ['build']));
    let failures = 0;
    drivers.block = {
      ...real,
      async start(ctx) {
        if (ctx.run.id === bad.id && failures++ < 2) throw new Error('this run breaks, twice');
        return real.start(ctx);
      },
    };
    try {
      const jobIds = [(await stepOf(bad.id, 'build')).job_id, (await stepOf(good.id, 'build')).job_id];
      const jobs = (await claim(t, agent, 8)).filter((j) => jobIds.includes(j.id));
      const res = await reportAll(t, agent, jobs, 'complete');
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json<{ results: { ok: boolean }[] }>().results.map((r) => r.ok)).toEqual([true, true]);
      // Both together failed, then each alone: the good one committed with the report.
      expect((await stepOf(good.id, 'test')).state).toBe('running');
      expect(failures).toBe(2);
      await t.deps.runs.idle();
      expect((await stepOf(bad.id, 'approve')).state).toBe('blocked');
    } finally {
      drivers.block = real;
    }
  });

  it("one report ending two runs' steps starts one step of a group that has one slot", async () => {
    const group = { concurrency_group: 'prod-tx', concurrency: 1 };
    const a = await start(command('build'), { ...command('deploy', ['build']), ...group });
    const b = await start(command('build'), { ...command('deploy', ['build']), ...group });
    const jobIds = [(await stepOf(a.id, 'build')).job_id, (await stepOf(b.id, 'build')).job_id];
    const jobs = (await claim(t, agent, 8)).filter((j) => jobIds.includes(j.id));
    expect(jobs).toHaveLength(2);
    const res = await reportAll(t, agent, jobs, 'complete');
    expect(res.statusCode, res.body).toBe(200);

    const deploys = [await stepOf(a.id, 'deploy'), await stepOf(b.id, 'deploy')];
    expect(deploys.map((d) => d.state).sort()).toEqual(['running', 'waiting']);
    expect(deploys.find((d) => d.state === 'waiting')!.reason).toBe('concurrency');
  });

  it.runIf(usingPostgres)('does not wait for a run another transaction holds: it advances after the commit', async () => {
    const run = await start(command('build'), command('test', ['build']));
    const build = await claimJobOf(run.id, 'build');
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const lockTaken = new Promise<void>((resolve) => (locked = resolve));
    const holder = t.deps.db.transaction(async (tx) => {
      await lockRun(tx, run.id);
      locked();
      await held;
    });
    await lockTaken;
    try {
      const res = await report(t, agent, build, 'complete', { exit_status: 0 });
      expect(res.statusCode, res.body).toBe(200);
      expect((await stepOf(run.id, 'test')).state).toBe('waiting');
    } finally {
      release();
      await holder;
    }
    await t.deps.runs.idle();
    expect((await stepOf(run.id, 'test')).state).toBe('running');
  });
});
