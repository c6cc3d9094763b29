import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { addUser, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { claim, createPool, registerAgent, report, type TestAgent } from '../../../test/helpers/queue.js';
import { expectHiddenFromOtherOrgs, expectNotListed } from '../../../test/helpers/tenancy.js';
import type { DeploymentView } from './deployments.views.js';

let t: TestApp;
let owner: TestUser;
let admin: TestUser;
let member: TestUser;
let viewer: TestUser;
let stranger: TestUser; // another organization
let stagingAgent: TestAgent;
let prodAgent: TestAgent;
let projectId: string;

beforeAll(async () => {
  t = await buildTestApp();
  [owner, stranger] = await Promise.all([createOrgAndLogin(t), createOrgAndLogin(t)]);
  [admin, member, viewer] = await Promise.all([
    addUser(t, owner, 'admin'),
    addUser(t, owner, 'member'),
    addUser(t, owner, 'viewer'),
  ]);
  stagingAgent = await registerAgent(t, await createPool(t, owner, 'deploy-staging'), { max_concurrency: 4 });
  prodAgent = await registerAgent(t, await createPool(t, owner, 'deploy-prod'), { max_concurrency: 4 });
  projectId = await newProject('Shop');
  await configure(admin, projectId, 'staging', { pool: 'deploy-staging', commands: ['./deploy.sh "$CAIRN_DEPLOY_VERSION"'] });
  await configure(admin, projectId, 'production', {
    pool: 'deploy-prod',
    commands: ['./deploy.sh --prod'],
    requires_approval: true,
    approval_roles: ['admin'],
    requires_passed: 'staging',
  });
});
afterAll(() => t.close());

const inject = (as: TestUser, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
  t.app.inject({ method, url, headers: as.headers, ...(payload ? { payload } : {}) });

async function newProject(name: string): Promise<string> {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/projects', headers: owner.headers, payload: { name } });
  return res.json<{ id: string }>().id;
}

async function configure(as: TestUser, project: string, name: string, body: Record<string, unknown>) {
  const res = await inject(as, 'PUT', `/api/v1/projects/${project}/environments/${name}`, body);
  expect(res.statusCode, res.body).toBe(200);
  return res.json<Record<string, unknown>>();
}

async function deploy(as: TestUser, body: Record<string, unknown>) {
  const res = await inject(as, 'POST', '/api/v1/deployments', { project_id: projectId, service: 'api', ...body });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<DeploymentView>();
}

async function get(id: string) {
  const res = await inject(viewer, 'GET', `/api/v1/deployments/${id}`);
  expect(res.statusCode, res.body).toBe(200);
  return res.json<DeploymentView>();
}

/** Plays the environment's agent: claims the deployment's job (only its pool's agent can), reports the outcome. */
async function runDeployJob(agent: TestAgent, d: DeploymentView, exitStatus = 0) {
  const jobs = await claim(t, agent, 4);
  const job = jobs.find((j) => j.id === d.job_id);
  expect(job, `the deploy job of ${d.version} → ${d.environment} is claimable by ${agent.poolName}`).toBeDefined();
  await report(t, agent, job!, 'complete', { exit_status: exitStatus });
  // A read settles the deployment from its job (if the jobs-ended notice has not yet), and starts the next in line.
  await get(d.id);
  return job!;
}

async function approve(as: TestUser, approvalId: string, decision: 'approve' | 'reject' = 'approve') {
  return inject(as, 'POST', `/api/v1/approvals/${approvalId}/respond`, { decision });
}

async function current() {
  const res = await inject(viewer, 'GET', `/api/v1/deployments/current?project_id=${projectId}&service=api`);
  expect(res.statusCode, res.body).toBe(200);
  const items = res.json<{ items: { environment: string; version: string }[] }>().items;
  return Object.fromEntries(items.map((i) => [i.environment, i.version]));
}

/** A version all the way to production: staging, promote, approve, deploy. */
async function release(version: string) {
  const staged = await deploy(member, { version, environment: 'staging' });
  await runDeployJob(stagingAgent, staged);
  expect((await get(staged.id)).state).toBe('succeeded');
  const promoted = await inject(member, 'POST', `/api/v1/deployments/${staged.id}/promote`, {});
  expect(promoted.statusCode, promoted.body).toBe(201);
  const prod = promoted.json<DeploymentView>();
  expect((await approve(admin, prod.approval_id!)).statusCode).toBe(200);
  await runDeployJob(prodAgent, await get(prod.id));
  expect((await get(prod.id)).state).toBe('succeeded');
  return prod;
}

describe('environments', () => {
  it('a project starts with staging and production (approval, after staging); admins change them', async () => {
    const fresh = await newProject('Fresh');
    const envs = `/api/v1/projects/${fresh}/environments`;
    const defaults = await inject(viewer, 'GET', envs);
    expect(defaults.json().items).toMatchObject([
      { name: 'staging', requires_approval: false, requires_passed: null, saved: false },
      { name: 'production', requires_approval: true, approval_roles: ['admin'], requires_passed: 'staging', saved: false },
    ]);
    expect((await inject(member, 'PUT', `${envs}/staging`, {})).statusCode).toBe(403);

    // Saving one saves the defaults with it.
    await configure(admin, fresh, 'staging', { pool: 'deploy-staging', commands: ['./deploy.sh'] });
    const saved = await inject(viewer, 'GET', envs);
    expect(
      saved.json().items.map((e: { name: string; saved: boolean; pool: string }) => `${e.name}:${e.saved}:${e.pool}`),
    ).toEqual(['staging:true:deploy-staging', 'production:true:default']);
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'environment.updated', actorId: admin.userId });
    await configure(admin, fresh, 'qa', { pool: 'deploy-staging', requires_passed: 'staging' });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'environment.created', actorId: admin.userId });

    const bad = async (body: Record<string, unknown>, code: string, name = 'perf') => {
      const res = await inject(admin, 'PUT', `${envs}/${name}`, body);
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().code).toBe(code);
    };
    await bad({ pool: 'nowhere' }, 'unknown_pool');
    await bad({ pool: 'deploy-staging', requires_passed: 'nope' }, 'unknown_environment');
    await bad({ pool: 'deploy-staging', requires_passed: 'production' }, 'requires_passed_loop', 'staging');
    await bad({ pool: 'deploy-staging', approval_users: ['ghost@example.test'] }, 'unknown_approvers');
    await bad({ pool: 'deploy-staging' }, 'validation_failed', 'Bad Name');

    const removeStaging = await inject(admin, 'DELETE', `${envs}/staging`);
    expect(removeStaging.statusCode).toBe(409);
    expect(removeStaging.json().detail).toContain('production');
    expect((await inject(admin, 'DELETE', `${envs}/qa`)).statusCode).toBe(204);
    expect((await inject(admin, 'DELETE', `${envs}/qa`)).statusCode).toBe(404);
  });
});

describe('deployments', () => {
  it('staging → approval → production → rollback restores the previous version', async () => {
    const first = await deploy(member, { version: '1.0.0', environment: 'staging' });
    expect(first).toMatchObject({ state: 'deploying', pool: 'deploy-staging', created_by: { id: member.userId } });
    // The deploy job runs on the environment's pool only, with the deployment in its environment.
    expect(await claim(t, prodAgent, 4)).toEqual([]);
    const job = await runDeployJob(stagingAgent, first);
    expect(job.env).toMatchObject({
      CAIRN_DEPLOY_SERVICE: 'api',
      CAIRN_DEPLOY_VERSION: '1.0.0',
      CAIRN_DEPLOY_ENVIRONMENT: 'staging',
      CAIRN_DEPLOYMENT_ID: first.id,
    });
    expect(job.commands).toEqual(['./deploy.sh "$CAIRN_DEPLOY_VERSION"']);
    expect(await get(first.id)).toMatchObject({ state: 'succeeded', finished_at: expect.any(String) });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'deployment.created', resourceId: first.id, actorId: member.userId });

    // Promotion to production waits for an admin; a member or a viewer cannot let it through.
    const promoted = await inject(member, 'POST', `/api/v1/deployments/${first.id}/promote`, {});
    expect(promoted.statusCode, promoted.body).toBe(201);
    const prod1 = promoted.json<DeploymentView>();
    expect(prod1).toMatchObject({
      environment: 'production',
      version: '1.0.0',
      state: 'awaiting_approval',
      promoted_from: first.id,
    });
    expect(await claim(t, prodAgent, 4)).toEqual([]);
    expect((await approve(member, prod1.approval_id!)).statusCode).toBe(403);
    expect((await approve(viewer, prod1.approval_id!)).statusCode).toBe(403);
    expect((await approve(admin, prod1.approval_id!)).statusCode).toBe(200);
    const deploying = await get(prod1.id);
    expect(deploying).toMatchObject({ state: 'deploying', job_id: expect.any(String) });
    await runDeployJob(prodAgent, deploying);
    expect((await get(prod1.id)).state).toBe('succeeded');
    expect(await current()).toEqual({ staging: '1.0.0', production: '1.0.0' });

    const prod2 = await release('2.0.0');
    expect(await current()).toEqual({ staging: '2.0.0', production: '2.0.0' });

    // Roll production back: a new deployment of 1.0.0, approved like any production deployment.
    const rolled = await inject(member, 'POST', `/api/v1/deployments/${prod2.id}/rollback`);
    expect(rolled.statusCode, rolled.body).toBe(201);
    const rollback = rolled.json<DeploymentView>();
    expect(rollback).toMatchObject({
      version: '1.0.0',
      environment: 'production',
      rollback_of: prod2.id,
      state: 'awaiting_approval',
    });
    expect((await approve(owner, rollback.approval_id!)).statusCode).toBe(200);
    const rollbackJob = await runDeployJob(prodAgent, await get(rollback.id));
    expect(rollbackJob.env).toMatchObject({ CAIRN_DEPLOY_VERSION: '1.0.0', CAIRN_DEPLOY_ROLLBACK_OF: prod2.id });
    expect((await get(rollback.id)).state).toBe('succeeded');
    expect(await current()).toEqual({ staging: '2.0.0', production: '1.0.0' });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'deployment.succeeded', resourceId: rollback.id });

    // Nothing came before the first staging deployment.
    const nothing = await inject(member, 'POST', `/api/v1/deployments/${first.id}/rollback`);
    expect(nothing.statusCode).toBe(409);
    expect(nothing.json().code).toBe('nothing_to_roll_back_to');
  });

  it('promoting a version that never passed staging is refused, naming staging', async () => {
    const failed = await deploy(member, { version: '3.0.0-bad', environment: 'staging' });
    await runDeployJob(stagingAgent, failed, 1);
    expect(await get(failed.id)).toMatchObject({ state: 'failed', reason: 'deploy job failed' });
    const promoted = await inject(member, 'POST', `/api/v1/deployments/${failed.id}/promote`, { environment: 'production' });
    expect(promoted.statusCode).toBe(409);
    expect(promoted.json()).toMatchObject({ code: 'not_passed_required_environment', required_environment: 'staging' });
    expect(promoted.json().detail).toBe(
      'api 3.0.0-bad has not passed staging: production only takes versions that deployed successfully to staging first.',
    );
    const direct = await inject(member, 'POST', '/api/v1/deployments', {
      project_id: projectId,
      service: 'api',
      version: '9.9.9',
      environment: 'production',
    });
    expect(direct.statusCode).toBe(409);
    expect(direct.json().detail).toContain('staging');
  });

  it('a rejected or canceled deployment never deploys; one deploys at a time per service and environment', async () => {
    const staged = await deploy(member, { version: '4.0.0', environment: 'staging' });
    await runDeployJob(stagingAgent, staged);
    const prod = (await inject(member, 'POST', `/api/v1/deployments/${staged.id}/promote`, {})).json<DeploymentView>();
    expect((await approve(admin, prod.approval_id!, 'reject')).statusCode).toBe(200);
    expect(await get(prod.id)).toMatchObject({ state: 'rejected', reason: `rejected by ${admin.email}` });

    const again = (await inject(member, 'POST', `/api/v1/deployments/${staged.id}/promote`, {})).json<DeploymentView>();
    const canceled = await inject(member, 'POST', `/api/v1/deployments/${again.id}/cancel`);
    expect(canceled.statusCode, canceled.body).toBe(200);
    expect(canceled.json()).toMatchObject({ state: 'canceled' });
    const approval = await inject(admin, 'GET', `/api/v1/approvals/${again.approval_id}`);
    expect(approval.json().state).toBe('canceled');
    expect((await inject(member, 'POST', `/api/v1/deployments/${again.id}/cancel`)).statusCode).toBe(409);
    expect(await claim(t, prodAgent, 4)).toEqual([]);

    const a = await deploy(member, { version: '5.0.0', environment: 'staging' });
    const b = await deploy(member, { version: '5.0.1', environment: 'staging' });
    expect(a.state).toBe('deploying');
    expect(b).toMatchObject({ state: 'pending', reason: `waiting for deployment ${a.id} to finish` });
    await runDeployJob(stagingAgent, a);
    const next = await get(b.id);
    expect(next.state).toBe('deploying');
    // Operators see it on /metrics too, without organization labels.
    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/cairn_deployments_active\{state="deploying",environment="staging"\} 1\b/);
    expect(metrics).toMatch(/cairn_deployments_active\{state="pending",environment=""\} 0\b/);
    expect(metrics).not.toContain(owner.orgId);
    await runDeployJob(stagingAgent, next);
    expect((await get(b.id)).state).toBe('succeeded');
  });

  it('lists by service, environment and state; the dashboard counts deployments', async () => {
    const page = await inject(viewer, 'GET', '/api/v1/deployments?service=api&environment=production&limit=2');
    expect(page.statusCode).toBe(200);
    const body = page.json<{ items: DeploymentView[]; next_cursor: string | null }>();
    expect(body.items).toHaveLength(2);
    expect(body.items.every((d) => d.environment === 'production' && d.service === 'api')).toBe(true);
    const rest = await inject(
      viewer,
      'GET',
      `/api/v1/deployments?service=api&environment=production&limit=200&cursor=${body.next_cursor}`,
    );
    const all = [...body.items, ...rest.json<{ items: DeploymentView[] }>().items];
    expect(new Set(all.map((d) => d.id)).size).toBe(all.length);
    const failed = await inject(viewer, 'GET', '/api/v1/deployments?state=failed');
    expect(failed.json().items.map((d: DeploymentView) => d.version)).toEqual(['3.0.0-bad']);

    const everything = await inject(viewer, 'GET', '/api/v1/deployments?limit=200');
    const states = everything.json<{ items: DeploymentView[] }>().items.map((d) => d.state);
    const summary = await inject(viewer, 'GET', '/api/v1/dashboard/summary');
    expect(summary.statusCode, summary.body).toBe(200);
    expect(summary.json()).toMatchObject({
      total_deployments: states.length,
      deployments_active: 0,
      deployments_failed: 1,
      // 4.0.0 and 5.0.0, 5.0.1 succeeded in staging and never reached production.
      deployments_staging: 3,
      deployments_by_state: { succeeded: states.filter((s) => s === 'succeeded').length, rejected: 1, canceled: 1 },
    });
  });

  it('bad input is a 4xx naming what is wrong', async () => {
    const cases: [Record<string, unknown>, number, string][] = [
      [{ version: '1', environment: 'qa' }, 400, 'unknown_environment'],
      [{ version: '', environment: 'staging' }, 400, 'validation_failed'],
      [{ version: '1', environment: 'staging', service: 'bad name!' }, 400, 'validation_failed'],
      [{ version: '1', environment: 'staging', project_id: '6f1c1e6e-8d1b-4a55-9c3a-2f0e1d7b5a10' }, 400, 'unknown_project'],
      [{ version: '1', environment: 'staging', run_id: '6f1c1e6e-8d1b-4a55-9c3a-2f0e1d7b5a10' }, 400, 'unknown_run'],
      [{ version: '1', environment: 'staging', artifact_id: '6f1c1e6e-8d1b-4a55-9c3a-2f0e1d7b5a10' }, 400, 'unknown_artifact'],
    ];
    for (const [extra, status, code] of cases) {
      const res = await inject(member, 'POST', '/api/v1/deployments', { project_id: projectId, service: 'api', ...extra });
      expect(res.statusCode, JSON.stringify(extra)).toBe(status);
      expect(res.json().code, JSON.stringify(extra)).toBe(code);
    }
    expect(
      (
        await inject(viewer, 'POST', '/api/v1/deployments', {
          project_id: projectId,
          service: 'api',
          version: '1',
          environment: 'staging',
        })
      ).statusCode,
    ).toBe(403);
    const other = await inject(owner, 'POST', '/api/v1/projects', { name: 'Unconfigured' });
    const noCommands = await inject(member, 'POST', '/api/v1/deployments', {
      project_id: other.json().id,
      service: 'api',
      version: '1',
      environment: 'staging',
    });
    expect(noCommands.statusCode).toBe(409);
    expect(noCommands.json().code).toBe('no_deploy_commands');
  });
});

describe('tenancy', () => {
  it("another organization's deployments are a 404 on every route and never listed", async () => {
    const d = await deploy(member, { version: '6.0.0', environment: 'staging' });
    const checked = await expectHiddenFromOtherOrgs(t, {
      pathPrefix: '/api/v1/deployments/{id}',
      params: { id: d.id },
      as: stranger,
      bodies: { 'POST /api/v1/deployments/{id}/promote': {}, 'POST /api/v1/deployments/{id}/cancel': {} },
    });
    expect(checked).toBe(4);
    await expectNotListed(t, '/api/v1/deployments', stranger, d.id);
    const peek = await inject(stranger, 'GET', `/api/v1/deployments/current?project_id=${projectId}`);
    expect(peek.statusCode).toBe(404);
    const intoOurs = await inject(stranger, 'POST', '/api/v1/deployments', {
      project_id: projectId,
      service: 'api',
      version: '1',
      environment: 'staging',
    });
    expect(intoOurs.statusCode).toBe(400);
    expect((await get(d.id)).state).toBe('deploying');
  });
});
