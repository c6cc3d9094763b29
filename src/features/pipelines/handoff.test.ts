// Hand-offs through the API with real job tokens from claims: outputs and files from one
// step read by a later one, dynamic uploads, and what a job token may not reach.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { claim, createPool, enqueue, registerAgent, report, type JobJson, type TestAgent } from '../../../test/helpers/queue.js';

let t: TestApp;
let owner: TestUser;
/** Each test has a pool of its own, so no test claims another's jobs. */
let agent: TestAgent;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
});
beforeEach(async () => {
  agent = await registerAgent(t, await createPool(t, owner), { max_concurrency: 8 });
});
afterAll(() => t.close());

type Claimed = JobJson & { job_token: string; run_id: string | null; step_key: string | null; env: Record<string, string> };
type RunJson = { id: string; number: number; state: string; steps: { key: string; state: string; needs: string[] }[] };

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function projectWith(pipeline: string): Promise<string> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/projects',
    headers: owner.headers,
    payload: { name: `Hand-off ${randomBytes(4).toString('hex')}` },
  });
  const id = res.json<{ id: string }>().id;
  const put = await t.app.inject({
    method: 'PUT',
    url: `/api/v1/projects/${id}/pipeline`,
    headers: { ...owner.headers, 'content-type': 'text/yaml' },
    payload: pipeline.replaceAll('{pool: linux}', `{pool: ${agent.poolName}}`),
  });
  expect(put.statusCode, put.body).toBe(200);
  return id;
}

async function trigger(projectId: string): Promise<RunJson> {
  const res = await t.app.inject({
    method: 'POST',
    url: `/api/v1/projects/${projectId}/runs`,
    headers: owner.headers,
    payload: {},
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<RunJson>();
}

/** Claims the run's next job and starts it, as an agent would. */
async function nextJob(step: string): Promise<Claimed> {
  const [job] = (await claim(t, agent)) as Claimed[];
  expect(job?.step_key).toBe(step);
  expect((await report(t, agent, job!, 'start')).statusCode).toBe(200);
  return job!;
}

async function finish(job: Claimed): Promise<void> {
  expect((await report(t, agent, job, 'complete')).statusCode).toBe(200);
  await t.deps.runs.idle();
}

const setOutput = (job: Claimed, key: string, value: string, token = job.job_token, jobId = job.id) =>
  t.app.inject({
    method: 'PUT',
    url: `/api/v1/jobs/${jobId}/outputs/${key}`,
    headers: { ...bearer(token), 'content-type': 'text/plain' },
    payload: value,
  });

const uploadFile = (job: Claimed, path: string, content: string) =>
  t.app.inject({
    method: 'PUT',
    url: `/api/v1/jobs/${job.id}/artifacts?path=${encodeURIComponent(path)}`,
    headers: { ...bearer(job.job_token), 'content-type': 'application/octet-stream' },
    payload: content,
  });

const THREE_STEPS = `steps:
  - key: build
    agents: {pool: linux}
    command: make
  - key: test
    agents: {pool: linux}
    command: make test
    needs: build
  - key: ship
    agents: {pool: linux}
    command: ./ship.sh
    needs: test
`;

describe('a three-step pipeline hands a value and a file from step 1 to step 3', () => {
  it('step 1 publishes with its job token; step 3 reads both with its own; people read them too', async () => {
    const run = await trigger(await projectWith(THREE_STEPS));

    const build = await nextJob('build');
    const set = await setOutput(build, 'version', '1.4.2');
    expect(set.statusCode, set.body).toBe(200);
    expect(set.json()).toEqual({ run_id: run.id, step_key: 'build', key: 'version', bytes: 5 });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'run.output_set', resourceId: run.id });
    const json = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/jobs/${build.id}/outputs/notes`,
      headers: bearer(build.job_token),
      payload: { value: 'line one\nline two' },
    });
    expect(json.statusCode, json.body).toBe(200);
    const uploaded = await uploadFile(build, 'dist/app.tar', 'the build output');
    expect(uploaded.statusCode, uploaded.body).toBe(201);
    await finish(build);

    const test = await nextJob('test');
    expect(test.env).toMatchObject({ CAIRN_OUTPUT_BUILD_VERSION: '1.4.2', CAIRN_OUTPUT_BUILD_NOTES: 'line one\nline two' });
    await finish(test);

    const ship = await nextJob('ship');
    expect(ship.env.CAIRN_OUTPUT_BUILD_VERSION).toBe('1.4.2');
    const outputs = await t.app.inject({ method: 'GET', url: `/api/v1/runs/${run.id}/outputs`, headers: bearer(ship.job_token) });
    expect(outputs.statusCode, outputs.body).toBe(200);
    expect(outputs.json()).toEqual({
      items: [
        { step_key: 'build', key: 'notes', value: 'line one\nline two' },
        { step_key: 'build', key: 'version', value: '1.4.2' },
      ],
    });
    const files = await t.app.inject({
      method: 'GET',
      url: `/api/v1/runs/${run.id}/artifacts?step=build`,
      headers: bearer(ship.job_token),
    });
    expect(files.statusCode, files.body).toBe(200);
    expect(files.json()).toMatchObject({ items: [{ step_key: 'build', path: 'dist/app.tar', size: 16 }], next_cursor: null });
    const file = await t.app.inject({
      method: 'GET',
      url: `/api/v1/runs/${run.id}/artifacts/file?step=build&path=dist/app.tar`,
      headers: bearer(ship.job_token),
    });
    expect(file.statusCode).toBe(200);
    expect(file.body).toBe('the build output');
    expect(file.headers['content-length']).toBe('16');
    await finish(ship);

    // People with jobs:read see the same; the run passed.
    const byUser = await t.app.inject({ method: 'GET', url: `/api/v1/runs/${run.id}/outputs`, headers: owner.headers });
    expect(byUser.json<{ items: unknown[] }>().items).toHaveLength(2);
    const download = await t.app.inject({
      method: 'GET',
      url: `/api/v1/runs/${run.id}/artifacts/file?path=dist/app.tar`,
      headers: owner.headers,
    });
    expect(download.body).toBe('the build output');
    const done = await t.app.inject({ method: 'GET', url: `/api/v1/runs/${run.id}`, headers: owner.headers });
    expect(done.json()).toMatchObject({ state: 'passed' });
  });
});

describe('what a job token may not do', () => {
  it('another run’s token gets a 404; a finished job’s token a 401; other jobs’ outputs a 404', async () => {
    const projectId = await projectWith(THREE_STEPS);
    const mine = await trigger(projectId);
    const build = await nextJob('build');
    const other = await trigger(projectId);
    const otherBuild = await nextJob('build');
    expect(otherBuild.run_id).toBe(other.id);

    for (const url of [
      `/api/v1/runs/${mine.id}/outputs`,
      `/api/v1/runs/${mine.id}/artifacts`,
      `/api/v1/runs/${mine.id}/artifacts/file?path=x`,
    ]) {
      const res = await t.app.inject({ method: 'GET', url, headers: bearer(otherBuild.job_token) });
      expect(res.statusCode, url).toBe(404);
    }
    // Its token sets outputs of its own job only.
    expect((await setOutput(build, 'x', 'y', otherBuild.job_token)).statusCode).toBe(404);
    const upload = await t.app.inject({
      method: 'POST',
      url: `/api/v1/runs/${mine.id}/pipeline`,
      headers: { ...bearer(otherBuild.job_token), 'content-type': 'text/yaml' },
      payload: 'steps: [{key: sneaky, command: x}]',
    });
    expect(upload.statusCode).toBe(404);

    // Files go only to its own job, and people do not upload as jobs.
    const foreign = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/jobs/${build.id}/artifacts?path=x.txt`,
      headers: { ...bearer(otherBuild.job_token), 'content-type': 'application/octet-stream' },
      payload: 'x',
    });
    expect(foreign.statusCode).toBe(404);
    const byUser = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/jobs/${build.id}/artifacts?path=x.txt`,
      headers: { ...owner.headers, 'content-type': 'application/octet-stream' },
      payload: 'x',
    });
    expect(byUser.statusCode).toBe(403);
    // Nor is a job token anything else: no user routes.
    const jobs = await t.app.inject({ method: 'GET', url: '/api/v1/jobs', headers: bearer(build.job_token) });
    expect(jobs.statusCode).toBe(403);

    await finish(build);
    expect((await setOutput(build, 'late', 'v')).statusCode).toBe(401);
    const read = await t.app.inject({ method: 'GET', url: `/api/v1/runs/${mine.id}/outputs`, headers: bearer(build.job_token) });
    expect(read.statusCode).toBe(401);
    expect((await uploadFile(build, 'late.txt', 'x')).statusCode).toBe(401);
  });

  it('refuses oversized values, NUL, bad keys, a missing body, and jobs that are not steps of a run', async () => {
    // A job outside any run has no step to publish for.
    const loose = await enqueue(t, owner, { pool: agent.poolName });
    const [claimed] = (await claim(t, agent)) as Claimed[];
    expect(claimed!.id).toBe(loose.id);
    const res = await setOutput(claimed!, 'k', 'v');
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'not_in_run' });
    await report(t, agent, claimed!, 'complete');

    await trigger(await projectWith(THREE_STEPS));
    const build = await nextJob('build');
    const big = await setOutput(build, 'big', 'x'.repeat(64 * 1024 + 1));
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ code: 'output_too_large', max_bytes: 65536 });
    expect((await setOutput(build, 'exact', 'x'.repeat(64 * 1024))).statusCode).toBe(200);
    for (let i = 1; i < 100; i++) expect((await setOutput(build, `k${i}`, 'v')).statusCode).toBe(200);
    expect((await setOutput(build, 'k1', 'replaced')).statusCode).toBe(200);
    expect((await setOutput(build, 'one-too-many', 'v')).json()).toMatchObject({ code: 'too_many_outputs' });
    expect((await setOutput(build, 'nul', 'a\u0000b')).json()).toMatchObject({ code: 'invalid_output' });
    expect((await setOutput(build, 'has.dot', 'v')).statusCode).toBe(400);
    const empty = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/jobs/${build.id}/outputs/k`,
      headers: bearer(build.job_token),
    });
    expect(empty.json()).toMatchObject({ code: 'body_required' });
    // Users cannot write outputs: they are what the step's own work published.
    const byUser = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/jobs/${build.id}/outputs/k`,
      headers: owner.headers,
      payload: { value: 'v' },
    });
    expect(byUser.statusCode).toBe(403);
    await finish(build);
  });
});

describe('dynamic pipelines', () => {
  it('a running step uploads steps into its run; they wait for it and may need earlier steps', async () => {
    const run = await trigger(await projectWith('steps:\n  - key: setup\n    agents: {pool: linux}\n    command: make\n'));
    const setup = await nextJob('setup');
    const upload = (payload: string, token = setup.job_token) =>
      t.app.inject({
        method: 'POST',
        url: `/api/v1/runs/${run.id}/pipeline`,
        headers: { ...bearer(token), 'content-type': 'text/yaml' },
        payload: payload.replaceAll('{pool: linux}', `{pool: ${agent.poolName}}`),
      });

    const invalid = await upload('steps:\n  - key: setup\n    command: again\n  - key: b\n    command: b\n    needs: [nope]\n');
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json()).toMatchObject({
      code: 'invalid_pipeline',
      errors: [
        { line: 2, column: 10, path: 'steps[0].key', message: 'The run already has a step "setup"; give this one another key.' },
      ],
    });

    const res = await upload(
      'steps:\n  - key: unit\n    agents: {pool: linux}\n    command: make unit\n  - key: lint\n    agents: {pool: linux}\n    command: make lint\n    needs: [setup]\n  - wait\n  - key: report\n    agents: {pool: linux}\n    command: ./report\n',
    );
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<RunJson>().steps.map((s) => `${s.key}:${s.state}:${s.needs.join('+')}`)).toEqual([
      'setup:running:',
      'unit:waiting:setup',
      'lint:waiting:setup',
      'report:waiting:unit+lint',
    ]);
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'run.steps_added', resourceId: run.id });

    // Only a job of the run may do this; a person gets a 403, another organization a 404.
    const byUser = await t.app.inject({
      method: 'POST',
      url: `/api/v1/runs/${run.id}/pipeline`,
      headers: { ...owner.headers, 'content-type': 'text/yaml' },
      payload: 'steps: [{command: x}]',
    });
    expect(byUser.statusCode).toBe(403);
    const stranger = await createOrgAndLogin(t);
    const byStranger = await t.app.inject({
      method: 'POST',
      url: `/api/v1/runs/${run.id}/pipeline`,
      headers: { ...stranger.headers, 'content-type': 'text/yaml' },
      payload: 'steps: [{command: x}]',
    });
    expect(byStranger.statusCode).toBe(404);

    await finish(setup);
    for (const step of ['unit', 'lint']) await finish(await nextJob(step));
    await finish(await nextJob('report'));
    const done = await t.app.inject({ method: 'GET', url: `/api/v1/runs/${run.id}`, headers: owner.headers });
    expect(done.json()).toMatchObject({ state: 'passed' });
  });
});
