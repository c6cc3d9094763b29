// Deploy steps through the run engine: a run deploys to staging, waits for production's
// approval, deploys to production; the environment's rules hold for pipelines too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { addUser, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { claim, createPool, registerAgent, report, type TestAgent } from '../../../test/helpers/queue.js';
import type { AuthContext } from '../../platform/auth.js';
import type { DeployStep, PipelineDefinition, StepDefinition } from '../pipelines/pipeline.model.js';
import { cancelRun, createRun, getRun } from '../runs/runs.service.js';
import { sweepDeployments } from './deployments.runtime.js';
import type { DeploymentView } from './deployments.views.js';

let t: TestApp;
let owner: TestUser;
let admin: TestUser;
let auth: AuthContext;
let builder: TestAgent;
let stagingAgent: TestAgent;
let prodAgent: TestAgent;
let projectId: string;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
  admin = await addUser(t, owner, 'admin');
  builder = await registerAgent(t, await createPool(t, owner, 'linux'), { max_concurrency: 4 });
  stagingAgent = await registerAgent(t, await createPool(t, owner, 'deploy-staging'), { max_concurrency: 4 });
  prodAgent = await registerAgent(t, await createPool(t, owner, 'deploy-prod'), { max_concurrency: 4 });
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/projects', headers: owner.headers, payload: { name: 'Web' } });
  projectId = res.json<{ id: string }>().id;
  for (const [name, body] of [
    ['staging', { pool: 'deploy-staging', commands: ['./deploy staging'] }],
    ['production', { pool: 'deploy-prod', commands: ['./deploy prod'], requires_approval: true, requires_passed: 'staging' }],
  ] as const) {
    const put = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/projects/${projectId}/environments/${name}`,
      headers: owner.headers,
      payload: body,
    });
    expect(put.statusCode, put.body).toBe(200);
  }
  auth = (await t.deps.authenticator.authenticate(owner.headers.authorization, { requestId: 'test', clientIp: null }))!;
});
afterAll(() => t.close());

const build: StepDefinition = {
  type: 'command',
  key: 'build',
  label: 'build',
  needs: [],
  commands: ['make'],
  pool: 'linux',
  tags: {},
  env: {},
  artifacts: [],
};
const deployTo = (key: string, environment: string, needs: string[], extra: Partial<DeployStep> = {}): StepDefinition => ({
  type: 'deploy',
  key,
  label: key,
  needs,
  service: 'web',
  environment,
  version: '${run.commit}',
  ...extra,
});
const pipeline = (...steps: StepDefinition[]): PipelineDefinition => ({ env: {}, steps });
const start = (definition: PipelineDefinition, commit: string) =>
  createRun(t.deps, auth, { projectId, pipelineVersionId: null, definition, trigger: { branch: 'main', commit } });

const step = async (runId: string, key: string) => (await getRun(t.deps, auth, runId)).steps.find((s) => s.key === key)!;

async function finishJob(agent: TestAgent, jobId: string, exitStatus = 0) {
  const job = (await claim(t, agent, 4)).find((j) => j.id === jobId);
  expect(job, `job ${jobId} claimable by ${agent.poolName}`).toBeDefined();
  await report(t, agent, job!, 'complete', { exit_status: exitStatus });
  await t.deps.runs.idle();
  return job!;
}

async function deployment(id: string) {
  const res = await t.app.inject({ method: 'GET', url: `/api/v1/deployments/${id}`, headers: owner.headers });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<DeploymentView>();
}

describe('deploy steps', () => {
  it('deploy to staging, wait for approval, deploy to production; the run passes', async () => {
    const run = await start(
      pipeline(build, deployTo('staging', 'staging', ['build']), deployTo('prod', 'production', ['staging'])),
      'abc123',
    );
    await finishJob(builder, (await step(run.id, 'build')).job_id!);

    const staging = await step(run.id, 'staging');
    expect(staging).toMatchObject({ state: 'running', deployment_id: expect.any(String), job_id: expect.any(String) });
    expect(await deployment(staging.deployment_id!)).toMatchObject({
      service: 'web',
      version: 'abc123',
      environment: 'staging',
      run_id: run.id,
      step_key: 'staging',
      state: 'deploying',
    });
    const stagingJob = await finishJob(stagingAgent, staging.job_id!);
    expect(stagingJob.env).toMatchObject({
      CAIRN_DEPLOY_VERSION: 'abc123',
      CAIRN_DEPLOY_ENVIRONMENT: 'staging',
      CAIRN_RUN_ID: run.id,
    });
    expect((await step(run.id, 'staging')).state).toBe('passed');

    const prod = await step(run.id, 'prod');
    expect(prod).toMatchObject({ state: 'blocked', approval_id: expect.any(String), deployment_id: expect.any(String) });
    expect((await getRun(t.deps, auth, run.id)).state).toBe('blocked');
    const approved = await t.app.inject({
      method: 'POST',
      url: `/api/v1/approvals/${prod.approval_id}/respond`,
      headers: admin.headers,
      payload: { decision: 'approve' },
    });
    expect(approved.statusCode, approved.body).toBe(200);
    await t.deps.runs.idle();
    const deploying = await step(run.id, 'prod');
    expect(deploying.state).toBe('running');
    const prodDeployment = await deployment(deploying.deployment_id!);
    expect(prodDeployment).toMatchObject({ state: 'deploying', version: 'abc123', environment: 'production' });
    await finishJob(prodAgent, prodDeployment.job_id!);
    expect((await step(run.id, 'prod')).state).toBe('passed');
    expect((await getRun(t.deps, auth, run.id)).state).toBe('passed');
    expect((await deployment(deploying.deployment_id!)).state).toBe('succeeded');
  });

  it('a failed deploy fails its step; production refuses a version staging never passed, saying so', async () => {
    const run = await start(
      pipeline(deployTo('staging', 'staging', []), deployTo('prod', 'production', [], { version: 'never-staged' })),
      'def456',
    );
    const prod = await step(run.id, 'prod');
    expect(prod.state).toBe('failed');
    expect(prod.reason).toContain('has not passed staging');
    await finishJob(stagingAgent, (await step(run.id, 'staging')).job_id!, 3);
    expect(await step(run.id, 'staging')).toMatchObject({ state: 'failed', reason: 'deploy job failed' });
    expect((await getRun(t.deps, auth, run.id)).state).toBe('failed');

    const typo = await start(pipeline(deployTo('staging', 'staging', [], { version: '${run.comit}' })), 'x');
    expect((await step(typo.id, 'staging')).reason).toContain('${run.comit}');
  });

  it('canceling the run cancels a deployment waiting for approval, and its approval', async () => {
    const first = await start(pipeline(deployTo('staging', 'staging', [])), 'ghi789');
    await finishJob(stagingAgent, (await step(first.id, 'staging')).job_id!);
    const run = await start(pipeline(deployTo('prod', 'production', [])), 'ghi789');
    const prod = await step(run.id, 'prod');
    expect(prod.state).toBe('blocked');
    await cancelRun(t.deps, auth, run.id);
    expect(await deployment(prod.deployment_id!)).toMatchObject({ state: 'canceled' });
    const approval = await t.app.inject({ method: 'GET', url: `/api/v1/approvals/${prod.approval_id}`, headers: owner.headers });
    expect(approval.json().state).toBe('canceled');
  });

  it('a deployment whose jobs-ended notice was lost is settled by the sweeper', async () => {
    const run = await start(pipeline(deployTo('staging', 'staging', [])), 'jkl012');
    const staging = await step(run.id, 'staging');
    await finishJob(stagingAgent, staging.job_id!);
    expect((await step(run.id, 'staging')).state).toBe('passed'); // the engine reads the job itself
    // Settled (a read waits for the notice's settle holding the row, or does it itself).
    expect((await deployment(staging.deployment_id!)).state).toBe('succeeded');
    // As if the notice had never come: the deployment still says deploying.
    await t.deps.db.query("UPDATE deployments SET state = 'deploying', finished_at = NULL WHERE id = $1", [
      staging.deployment_id,
    ]);
    // Its job completed, so the version counts as passed staging already (no race with the settle).
    const prod = await t.app.inject({
      method: 'POST',
      url: '/api/v1/deployments',
      headers: owner.headers,
      payload: { project_id: projectId, service: 'web', version: 'jkl012', environment: 'production' },
    });
    expect(prod.statusCode, prod.body).toBe(201);
    expect(prod.json().state).toBe('awaiting_approval');
    expect(await sweepDeployments(t.deps)).toBeGreaterThanOrEqual(1);
    const { rows } = await t.deps.db.query<{ state: string }>('SELECT state FROM deployments WHERE id = $1', [
      staging.deployment_id,
    ]);
    expect(rows[0]!.state).toBe('succeeded');
    expect(await sweepDeployments(t.deps)).toBe(0);
  });
});
