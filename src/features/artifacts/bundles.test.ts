// A project's artifacts as a whole: summary, ZIP bundles of a project and of a run,
// deletion, retention cleanup, roles and tenancy. Bounded memory with 200 MB: bundles.memory.test.ts.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { addUser, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { claim, createPool, enqueue, registerAgent, report, type JobJson, type TestAgent } from '../../../test/helpers/queue.js';
import { expectHiddenFromOtherOrgs } from '../../../test/helpers/tenancy.js';
import { unzip } from '../../../test/helpers/zip.js';
import type { PipelineDefinition } from '../pipelines/pipeline.model.js';
import { insertPipelineVersion } from '../runs/runs.queries.js';
import { createBlobStore } from '../../platform/blobs.js';
import { startArtifactRetention } from './bundles.retention.js';
import { deleteOldArtifacts } from './bundles.service.js';

const step = (key: string, needs: string[] = []) => ({
  type: 'command' as const,
  key,
  label: key,
  needs,
  commands: ['make'],
  pool: 'bundles',
  tags: {},
  env: {},
  artifacts: [],
});
const definition: PipelineDefinition = { env: {}, steps: [step('build'), step('test', ['build'])] };

let t: TestApp;
let owner: TestUser;
let stranger: TestUser;
let agent: TestAgent;
let projectId: string;
let runId: string;
let looseJob: JobJson;
const files = {
  app: Buffer.from('console.log("hello");\n'.repeat(500)),
  tool: randomBytes(300_000),
  buildReport: Buffer.from('build: ok\n'),
  testReport: Buffer.from('42 passed, 0 failed\n'),
  loose: Buffer.from('a job outside any run\n'),
};

function upload(job: JobJson, path: string, body: Buffer) {
  return t.app.inject({
    method: 'PUT',
    url: `/api/v1/jobs/${job.id}/artifacts?path=${encodeURIComponent(path)}`,
    headers: { ...agent.headers, 'content-type': 'application/octet-stream', 'x-lease-token': job.lease_token! },
    payload: body,
  });
}

async function uploadAll(job: JobJson, entries: [string, Buffer][]) {
  for (const [path, body] of entries) expect((await upload(job, path, body)).statusCode).toBe(201);
}

async function newProject(name: string): Promise<string> {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/projects', headers: owner.headers, payload: { name } });
  return res.json<{ id: string }>().id;
}

beforeAll(async () => {
  t = await buildTestApp();
  [owner, stranger] = await Promise.all([createOrgAndLogin(t), createOrgAndLogin(t)]);
  agent = await registerAgent(t, await createPool(t, owner, 'bundles'), { max_concurrency: 10 });
  projectId = await newProject('Bundled');
  await insertPipelineVersion(t.deps.db, { orgId: owner.orgId, projectId, source: '# test', definition, createdBy: 'test' });
  const run = await t.app.inject({
    method: 'POST',
    url: `/api/v1/projects/${projectId}/runs`,
    headers: owner.headers,
    payload: {},
  });
  runId = run.json<{ id: string }>().id;

  const [build] = await claim(t, agent);
  await uploadAll(build!, [
    ['dist/app.js', files.app],
    ['bin/tool', files.tool],
    ['report.txt', Buffer.from('replaced by the next upload')],
    ['report.txt', files.buildReport],
  ]);
  await report(t, agent, build!, 'complete');
  await t.deps.runs.idle();
  const [test] = await claim(t, agent);
  expect(test!.step_key).toBe('test');
  await uploadAll(test!, [['report.txt', files.testReport]]);
  await report(t, agent, test!, 'complete');

  await enqueue(t, owner, { pool: 'bundles', project_id: projectId });
  [looseJob] = (await claim(t, agent)) as [JobJson];
  await uploadAll(looseJob, [['logs/out.log', files.loose]]);
});
afterAll(() => t.close());

const get = (url: string, user = owner) => t.app.inject({ method: 'GET', url, headers: user.headers });

describe('artifact bundles', () => {
  it('summarizes count and size, in all and per run', async () => {
    const res = await get(`/api/v1/projects/${projectId}/artifacts/summary`);
    expect(res.statusCode, res.body).toBe(200);
    const runBytes = files.app.length + files.tool.length + files.buildReport.length + files.testReport.length;
    expect(res.json()).toEqual({
      project_id: projectId,
      count: 5,
      bytes: runBytes + files.loose.length,
      without_run: { count: 1, bytes: files.loose.length },
      runs: [{ run_id: runId, run_number: 1, count: 4, bytes: runBytes }],
      next_cursor: null,
    });
  });

  it('downloads a project’s artifacts as one ZIP named by run, step and path', async () => {
    const res = await get(`/api/v1/projects/${projectId}/artifacts/download`);
    expect(res.statusCode, res.body.slice(0, 200)).toBe(200);
    expect(res.headers['content-type']).toBe('application/zip');
    expect(res.headers['content-disposition']).toMatch(/attachment; filename="bundled-artifacts\.zip"/);
    const entries = await unzip(res.rawPayload);
    expect([...entries.keys()].sort()).toEqual(
      [
        '1/build/bin/tool',
        '1/build/dist/app.js',
        '1/build/report.txt',
        '1/test/report.txt',
        `jobs/${looseJob.id}/logs/out.log`,
      ].sort(),
    );
    expect(entries.get('1/build/dist/app.js')).toEqual({ data: files.app, compressed: true });
    expect(entries.get('1/build/bin/tool')).toEqual({ data: files.tool, compressed: false });
    expect(entries.get('1/build/report.txt')!.data).toEqual(files.buildReport);
    expect(entries.get('1/test/report.txt')!.data).toEqual(files.testReport);
  });

  it('downloads one run’s artifacts', async () => {
    const res = await get(`/api/v1/runs/${runId}/artifacts/download`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-disposition']).toMatch(/bundled-run-1-artifacts\.zip/);
    expect([...(await unzip(res.rawPayload)).keys()].sort()).toEqual(
      ['1/build/bin/tool', '1/build/dist/app.js', '1/build/report.txt', '1/test/report.txt'].sort(),
    );
  });

  it('bundles an empty project as an empty ZIP', async () => {
    const empty = await newProject('Nothing yet');
    const res = await get(`/api/v1/projects/${empty}/artifacts/download`);
    expect(res.statusCode).toBe(200);
    expect((await unzip(res.rawPayload)).size).toBe(0);
  });

  it('lets viewers read, only admins delete', async () => {
    const viewer = await addUser(t, owner, 'viewer');
    const member = await addUser(t, owner, 'member');
    expect((await get(`/api/v1/projects/${projectId}/artifacts/summary`, viewer)).statusCode).toBe(200);
    expect((await get(`/api/v1/projects/${projectId}/artifacts/download`, viewer)).statusCode).toBe(200);
    for (const url of [`/api/v1/projects/${projectId}/artifacts`, '/api/v1/artifacts/cleanup-old?older_than_days=0']) {
      expect((await t.app.inject({ method: 'DELETE', url, headers: member.headers })).statusCode).toBe(403);
    }
  });

  it("hides one organization's artifacts from another", async () => {
    await expectHiddenFromOtherOrgs(t, {
      pathPrefix: '/api/v1/projects/{id}/artifacts',
      params: { id: projectId },
      as: stranger,
    });
    await expectHiddenFromOtherOrgs(t, {
      pathPrefix: '/api/v1/runs/{id}/artifacts/download',
      params: { id: runId },
      as: stranger,
    });
    // The stranger's own cleanup never reaches our organization.
    const res = await t.app.inject({
      method: 'DELETE',
      url: '/api/v1/artifacts/cleanup-old?older_than_days=0',
      headers: stranger.headers,
    });
    expect(res.json()).toMatchObject({ deleted: 0 });
    expect((await get(`/api/v1/projects/${projectId}/artifacts/summary`)).json()).toMatchObject({ count: 5 });
  });

  it('cleans up by age, keeping artifacts of jobs still queued or running', async () => {
    const res = await t.app.inject({
      method: 'DELETE',
      url: '/api/v1/artifacts/cleanup-old?older_than_days=0',
      headers: owner.headers,
    });
    expect(res.statusCode, res.body).toBe(200);
    // The run's jobs finished; the loose job is still claimed.
    expect(res.json()).toMatchObject({ deleted: 4 });
    expect((await get(`/api/v1/projects/${projectId}/artifacts/summary`)).json()).toMatchObject({ count: 1, runs: [] });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'artifacts.cleaned_up', resourceId: owner.orgId });
    const bad = await t.app.inject({
      method: 'DELETE',
      url: '/api/v1/artifacts/cleanup-old?older_than_days=-3',
      headers: owner.headers,
    });
    expect(bad.statusCode).toBe(400);
  });

  it('deletes all of a project’s artifacts and the stored files nothing else names', async () => {
    const res = await t.app.inject({ method: 'DELETE', url: `/api/v1/projects/${projectId}/artifacts`, headers: owner.headers });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ deleted: 1, bytes: files.loose.length });
    expect(await t.deps.db.query('SELECT 1 FROM artifacts WHERE project_id = $1', [projectId])).toMatchObject({ rows: [] });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'project.artifacts_deleted', resourceId: projectId });
    const { rows } = await t.deps.db.query('SELECT 1 FROM blob_gc_candidates');
    expect(rows).toHaveLength(0); // collected at once
  });

  it('retention (the loop’s pass): every organization’s old artifacts of finished jobs, audited per organization', async () => {
    expect(startArtifactRetention(t.deps, t.app.log)).toBeNull(); // CAIRN_ARTIFACT_RETENTION_DAYS unset: no loop
    await enqueue(t, owner, { pool: 'bundles', project_id: projectId });
    const [job] = await claim(t, agent);
    await uploadAll(job!, [['old.txt', Buffer.from('old')]]);
    await report(t, agent, job!, 'complete');
    const service = { ...t.deps, blobs: createBlobStore(t.deps.config.blobDir) };
    expect(await deleteOldArtifacts(service, undefined, 1)).toMatchObject({ deleted: 0 }); // a day old: not yet
    expect(await deleteOldArtifacts(service, undefined, 0)).toMatchObject({ deleted: 1, blobs_removed: 1 });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'artifacts.expired', resourceId: owner.orgId });
  });
});
