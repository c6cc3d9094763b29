// The whole release path a newcomer would walk, on a real server with two real agents: a
// pipeline with build, test and deploy steps, started by a signed GitHub push webhook;
// staging deploys on its own, production waits for an approval; a rollback puts the
// previous version back; the run's artifacts download as one ZIP.
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, startServer, waitUntil, type E2eAgent, type E2eServer } from '../agent/harness.js';
import { unzip } from '../helpers/zip.js';
import { stepOf, stepStates, waitForRun, type RunView } from './runs.js';

const PIPELINE = `
steps:
  - key: build
    agents: { pool: release }
    commands:
      - mkdir -p dist && echo "1.0.$CAIRN_RUN_NUMBER" > dist/version.txt
      - cairn step output set version "$(cat dist/version.txt)"
    artifact_paths: "dist/version.txt"

  - key: test
    needs: build
    agents: { pool: release }
    commands:
      - mkdir -p reports && echo "<testsuite name='unit' tests='1' failures='0'/>" > reports/junit.xml
    artifact_paths: "reports/junit.xml"

  - deploy: { service: web, environment: staging, version: "\${steps.build.outputs.version}" }
    key: staging
    needs: test

  - deploy: { service: web, environment: production, version: "\${steps.build.outputs.version}" }
    key: production
    needs: staging
`;

interface Deployment {
  id: string;
  state: string;
  version: string;
  environment: string;
  approval_id: string | null;
}

let server: E2eServer;
let agents: E2eAgent[] = [];
let projectId: string;
let webhookSecret: string;
/** Where the deploy commands record what each environment runs, as a real deploy would change a host. */
let hosts: string;

beforeAll(async () => {
  hosts = await mkdtemp(path.join(os.tmpdir(), 'cairn-release-hosts-'));
  server = await startServer();
  const pool = await server.createPool('release');
  agents = await Promise.all([startAgent(server, pool, { name: 'left' }), startAgent(server, pool, { name: 'right' })]);
  projectId = (await server.api<{ id: string }>('POST', '/api/v1/projects', { name: 'Web shop' })).body.id;
  const uploaded = await server.api('PUT', `/api/v1/projects/${projectId}/pipeline`, { source: PIPELINE });
  expect(uploaded.status, JSON.stringify(uploaded.body)).toBe(200);
  for (const [name, rules] of [
    ['staging', {}],
    ['production', { requires_approval: true, approval_roles: ['admin'], requires_passed: 'staging' }],
  ] as const) {
    const res = await server.api('PUT', `/api/v1/projects/${projectId}/environments/${name}`, {
      pool: 'release',
      commands: [`echo "$CAIRN_DEPLOY_VERSION" > '${hosts}/${name}' && echo "deployed $CAIRN_DEPLOY_VERSION to ${name}"`],
      ...rules,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }
  const secret = await server.api<{ secret: string }>('POST', `/api/v1/projects/${projectId}/webhook-secret`);
  expect(secret.status).toBe(201);
  webhookSecret = secret.body.secret;
}, 120_000);
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await server?.close();
  await rm(hosts, { recursive: true, force: true });
});

/** What GitHub sends on a push: the body signed with the shared secret. */
async function pushWebhook(commit: string, secret = webhookSecret) {
  const body = JSON.stringify({
    ref: 'refs/heads/main',
    before: '0'.repeat(40),
    after: commit,
    deleted: false,
    head_commit: { id: commit, message: `Release ${commit.slice(0, 7)}` },
    repository: { full_name: 'acme/web-shop' },
  });
  const res = await fetch(`${server.url}/api/v1/hooks/github/${projectId}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'push',
      'x-github-delivery': randomUUID(),
      'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
    },
    body,
  });
  return { status: res.status, body: (await res.json()) as { outcome: string; run_id: string | null } };
}

const deployment = async (id: string) => (await server.api<Deployment>('GET', `/api/v1/deployments/${id}`)).body;
const runningIn = (environment: string) => readFile(path.join(hosts, environment), 'utf8').then((s) => s.trim());

async function approve(approvalId: string) {
  const res = await server.api('POST', `/api/v1/approvals/${approvalId}/respond`, { decision: 'approve', comment: 'ship it' });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

/** A push all the way to production: the run blocks on the production approval, which is given. */
async function release(commit: string): Promise<{ run: RunView; production: Deployment }> {
  const hook = await pushWebhook(commit);
  expect(hook.status, JSON.stringify(hook.body)).toBe(201);
  expect(hook.body.outcome).toBe('started');
  const runId = hook.body.run_id!;
  const blocked = await waitForRun(server, runId, (r) => r.state === 'blocked', 'the run to wait for the production approval');
  expect(stepStates(blocked)).toEqual(['build:passed', 'test:passed', 'staging:passed', 'production:blocked']);
  const waiting = await deployment(stepOf(blocked, 'production').deployment_id!);
  expect(waiting).toMatchObject({ state: 'awaiting_approval', environment: 'production' });
  await approve(waiting.approval_id!);
  const run = await waitForRun(server, runId, (r) => ['passed', 'failed'].includes(r.state), 'the run to finish');
  expect(stepStates(run)).toEqual(['build:passed', 'test:passed', 'staging:passed', 'production:passed']);
  return { run, production: await deployment(waiting.id) };
}

describe('from a GitHub push to production and back', () => {
  it('builds, tests, deploys to staging, waits for approval, deploys to production, rolls back, and bundles the artifacts', async () => {
    const first = await release('a'.repeat(40));
    expect(first.production).toMatchObject({ state: 'succeeded', version: `1.0.${first.run.number}` });
    expect(await runningIn('production')).toBe(`1.0.${first.run.number}`);

    const second = await release('b'.repeat(40));
    expect(await runningIn('staging')).toBe(`1.0.${second.run.number}`);
    expect(await runningIn('production')).toBe(`1.0.${second.run.number}`);

    // Roll production back: the previous version, under production's approval rule again.
    const rollback = await server.api<Deployment>('POST', `/api/v1/deployments/${second.production.id}/rollback`);
    expect(rollback.status, JSON.stringify(rollback.body)).toBe(201);
    expect(rollback.body).toMatchObject({ state: 'awaiting_approval', version: `1.0.${first.run.number}` });
    await approve(rollback.body.approval_id!);
    await waitUntil(async () => (await deployment(rollback.body.id)).state === 'succeeded', 30_000, 'the rollback to deploy');
    expect(await runningIn('production')).toBe(`1.0.${first.run.number}`);

    // The command steps ran as jobs on the agents, and the run's files come back as one ZIP.
    const jobs = await Promise.all(['build', 'test'].map((key) => server.job(stepOf(second.run, key).job_id!)));
    expect(jobs.map((j) => [j.state, j.agent_id !== null])).toEqual([
      ['completed', true],
      ['completed', true],
    ]);
    const zip = await server.raw(`/api/v1/runs/${second.run.id}/artifacts/download`);
    expect(zip.status).toBe(200);
    expect(zip.headers.get('content-type')).toBe('application/zip');
    const entries = await unzip(Buffer.from(await zip.arrayBuffer()));
    const n = second.run.number;
    expect([...entries.keys()].sort()).toEqual([`${n}/build/dist/version.txt`, `${n}/test/reports/junit.xml`]);
    expect(entries.get(`${n}/build/dist/version.txt`)!.data.toString().trim()).toBe(`1.0.${n}`);
  }, 180_000);

  it('a push signed with the wrong secret starts nothing', async () => {
    const forged = await pushWebhook('c'.repeat(40), 'not-the-secret');
    expect(forged.status).toBe(401);
    const runs = await server.api<{ items: RunView[] }>('GET', `/api/v1/projects/${projectId}/runs`);
    expect(runs.body.items).toHaveLength(2);
  });
});
