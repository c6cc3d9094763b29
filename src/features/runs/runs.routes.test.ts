import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { addUser, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { claim, createPool, registerAgent, report, type TestAgent } from '../../../test/helpers/queue.js';
import { expectHiddenFromOtherOrgs, expectNotListed } from '../../../test/helpers/tenancy.js';
import type { PipelineDefinition } from '../pipelines/pipeline.model.js';
import { insertPipelineVersion } from './runs.queries.js';

let t: TestApp;
let owner: TestUser;
let stranger: TestUser;
let agent: TestAgent;
let projectId: string;

const definition: PipelineDefinition = {
  env: {},
  steps: [
    {
      type: 'command',
      key: 'build',
      label: 'Build',
      needs: [],
      commands: ['make'],
      pool: 'ci',
      tags: {},
      env: {},
      artifacts: [],
    },
    {
      type: 'command',
      key: 'test',
      label: 'Test',
      needs: ['build'],
      commands: ['make test'],
      pool: 'ci',
      tags: {},
      env: {},
      artifacts: [],
    },
  ],
};

beforeAll(async () => {
  t = await buildTestApp();
  [owner, stranger] = await Promise.all([createOrgAndLogin(t), createOrgAndLogin(t)]);
  agent = await registerAgent(t, await createPool(t, owner, 'ci'), { max_concurrency: 4 });
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/projects',
    headers: owner.headers,
    payload: { name: 'Runs API' },
  });
  projectId = res.json<{ id: string }>().id;
});
afterAll(() => t.close());

const trigger = (user = owner, body: Record<string, unknown> = { branch: 'main', commit: 'abc1234' }) =>
  t.app.inject({ method: 'POST', url: `/api/v1/projects/${projectId}/runs`, headers: user.headers, payload: body });

type RunJson = { id: string; number: number; state: string; steps: { key: string; state: string; job_id: string | null }[] };

describe('runs API', () => {
  it('refuses to run a project without a pipeline', async () => {
    const res = await trigger();
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'no_pipeline' });
  });

  it('triggers, lists, reads, reruns; the project status and completion follow', async () => {
    await insertPipelineVersion(t.deps.db, { orgId: owner.orgId, projectId, source: '# test', definition, createdBy: 'test' });
    const res = await trigger();
    expect(res.statusCode, res.body).toBe(201);
    const run = res.json<RunJson>();
    expect(run).toMatchObject({
      number: 1,
      state: 'running',
      steps: [
        { key: 'build', state: 'running' },
        { key: 'test', state: 'waiting' },
      ],
    });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'run.created', resourceId: run.id });

    const status = await t.app.inject({ method: 'GET', url: `/api/v1/projects/${projectId}/status`, headers: owner.headers });
    expect(status.json()).toMatchObject({ counts: { runs: 1, active_runs: 1, jobs: 1 }, complete: false });
    const completion = await t.app.inject({
      method: 'GET',
      url: `/api/v1/projects/${projectId}/completion`,
      headers: owner.headers,
    });
    expect(completion.json()).toMatchObject({ complete: false, active_runs: 1, steps_remaining: 2 });

    for (const step of ['build', 'test']) {
      const [job] = await claim(t, agent);
      expect(job!.step_key).toBe(step);
      await report(t, agent, job!, 'complete');
      await t.deps.runs.idle();
    }
    const done = await t.app.inject({ method: 'GET', url: `/api/v1/runs/${run.id}`, headers: owner.headers });
    expect(done.json()).toMatchObject({ state: 'passed', complete: true });
    const after = await t.app.inject({ method: 'GET', url: `/api/v1/projects/${projectId}/completion`, headers: owner.headers });
    expect(after.json()).toMatchObject({ complete: true, runs: 1, active_runs: 0, jobs: 2 });

    const again = await t.app.inject({ method: 'POST', url: `/api/v1/runs/${run.id}/rerun`, headers: owner.headers });
    expect(again.statusCode).toBe(201);
    expect(again.json()).toMatchObject({ number: 2, trigger: 'rerun', rerun_of: run.id, branch: 'main', commit: 'abc1234' });
    const list = await t.app.inject({
      method: 'GET',
      url: `/api/v1/projects/${projectId}/runs?state=running`,
      headers: owner.headers,
    });
    expect(list.json<{ items: { number: number }[] }>().items.map((r) => r.number)).toEqual([2]);
    const rerunId = again.json<RunJson>().id;
    expect(
      (await t.app.inject({ method: 'POST', url: `/api/v1/runs/${rerunId}/cancel`, headers: owner.headers })).statusCode,
    ).toBe(200);
  });

  it('members cancel and retry; only admins force complete', async () => {
    const member = await addUser(t, owner, 'member');
    const run = (await trigger(member)).json<RunJson>();
    const [job] = await claim(t, agent);
    await report(t, agent, job!, 'complete', { exit_status: 3 });
    await t.deps.runs.idle();
    const failed = await t.app.inject({ method: 'GET', url: `/api/v1/runs/${run.id}`, headers: member.headers });
    expect(failed.json()).toMatchObject({ state: 'failed', steps: [{ state: 'failed' }, { state: 'skipped' }] });
    const retried = await t.app.inject({
      method: 'POST',
      url: `/api/v1/runs/${run.id}/steps/build/retry`,
      headers: member.headers,
    });
    expect(retried.json()).toMatchObject({ state: 'running', steps: [{ state: 'running' }, { state: 'waiting' }] });
    const notFailed = await t.app.inject({
      method: 'POST',
      url: `/api/v1/runs/${run.id}/steps/test/retry`,
      headers: member.headers,
    });
    expect(notFailed.statusCode).toBe(409);
    const forced = await t.app.inject({ method: 'POST', url: `/api/v1/runs/${run.id}/force-complete`, headers: member.headers });
    expect(forced.statusCode).toBe(403);
    const canceled = await t.app.inject({ method: 'POST', url: `/api/v1/runs/${run.id}/cancel`, headers: member.headers });
    expect(canceled.json()).toMatchObject({ state: 'canceled' });
    expect(
      (await t.app.inject({ method: 'POST', url: `/api/v1/runs/${run.id}/cancel`, headers: member.headers })).statusCode,
    ).toBe(409);

    const other = (await trigger()).json<RunJson>();
    const byAdmin = await t.app.inject({
      method: 'POST',
      url: `/api/v1/projects/${projectId}/force-complete`,
      headers: owner.headers,
    });
    expect(byAdmin.json()).toMatchObject({ complete: true, active_runs: 0 });
    const forcedRun = await t.app.inject({ method: 'GET', url: `/api/v1/runs/${other.id}`, headers: owner.headers });
    expect(forcedRun.json()).toMatchObject({ forced_by: owner.email });
  });

  it('another organization sees none of it', async () => {
    const run = (await trigger()).json<RunJson>();
    await expectHiddenFromOtherOrgs(t, { pathPrefix: '/api/v1/runs/{id}', params: { id: run.id, key: 'build' }, as: stranger });
    for (const pathPrefix of [
      '/api/v1/projects/{id}/runs',
      '/api/v1/projects/{id}/completion',
      '/api/v1/projects/{id}/force-complete',
    ]) {
      await expectHiddenFromOtherOrgs(t, {
        pathPrefix,
        params: { id: projectId },
        as: stranger,
        bodies: { 'POST /api/v1/projects/{id}/runs': { branch: 'main' } },
      });
    }
    await expectNotListed(t, '/api/v1/runs', stranger, run.id);
  });
});
