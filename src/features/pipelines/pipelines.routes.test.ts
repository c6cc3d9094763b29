import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { addUser, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { expectHiddenFromOtherOrgs } from '../../../test/helpers/tenancy.js';
import { PIPELINE_SCHEMA } from './pipeline.schema.js';

let t: TestApp;
let owner: TestUser;
let stranger: TestUser;

beforeAll(async () => {
  t = await buildTestApp();
  [owner, stranger] = await Promise.all([createOrgAndLogin(t), createOrgAndLogin(t)]);
});
afterAll(() => t.close());

const PIPELINE = `steps:
  - key: build
    command: make
  - wait
  - key: test
    command: make test
`;

async function newProject(user = owner): Promise<string> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/projects',
    headers: user.headers,
    payload: { name: `Pipelines ${randomBytes(4).toString('hex')}` },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ id: string }>().id;
}

const put = (projectId: string, payload: string, contentType = 'text/yaml', user = owner) =>
  t.app.inject({
    method: 'PUT',
    url: `/api/v1/projects/${projectId}/pipeline`,
    headers: { ...user.headers, 'content-type': contentType },
    payload,
  });

type VersionJson = { id: string; version: number; source: string; definition: { steps: { key: string; needs: string[] }[] } };

describe('a project’s pipeline', () => {
  it('each upload is a new version; the current one and older ones can be read; audited', async () => {
    const projectId = await newProject();
    const first = await put(projectId, PIPELINE);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toMatchObject({
      project_id: projectId,
      version: 1,
      source: PIPELINE,
      definition: {
        env: {},
        steps: [
          { key: 'build', needs: [] },
          { key: 'test', needs: ['build'] },
        ],
      },
    });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'pipeline.updated', resourceId: first.json<VersionJson>().id });

    const second = await put(projectId, JSON.stringify({ source: 'steps:\n  - command: echo hi\n' }), 'application/json');
    expect(second.statusCode, second.body).toBe(200);
    expect(second.json()).toMatchObject({ version: 2, definition: { steps: [{ key: 'step-1', commands: ['echo hi'] }] } });
    for (const type of ['application/yaml; charset=utf-8', 'text/plain', 'application/x-yaml']) {
      expect((await put(projectId, PIPELINE, type)).statusCode, type).toBe(200);
    }

    const current = await t.app.inject({ method: 'GET', url: `/api/v1/projects/${projectId}/pipeline`, headers: owner.headers });
    expect(current.json()).toMatchObject({ version: 5, source: PIPELINE });
    const old = await t.app.inject({
      method: 'GET',
      url: `/api/v1/projects/${projectId}/pipeline?version=2`,
      headers: owner.headers,
    });
    expect(old.json()).toMatchObject({ version: 2, definition: { steps: [{ key: 'step-1' }] } });
    const missing = await t.app.inject({
      method: 'GET',
      url: `/api/v1/projects/${projectId}/pipeline?version=9`,
      headers: owner.headers,
    });
    expect(missing.statusCode).toBe(404);

    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const page: { statusCode: number; body: string; json<T>(): T } = await t.app.inject({
        method: 'GET',
        url: `/api/v1/projects/${projectId}/pipeline/versions?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        headers: owner.headers,
      });
      expect(page.statusCode, page.body).toBe(200);
      const body: { items: { version: number; steps: number }[]; next_cursor: string | null } = page.json();
      seen.push(...body.items.map((v) => v.version));
      cursor = body.next_cursor;
    } while (cursor);
    expect(seen).toEqual([5, 4, 3, 2, 1]);

    // A run starts from the current version.
    const run = await t.app.inject({
      method: 'POST',
      url: `/api/v1/projects/${projectId}/runs`,
      headers: owner.headers,
      payload: {},
    });
    expect(run.statusCode, run.body).toBe(201);
    expect(run.json()).toMatchObject({ steps: [{ key: 'build' }, { key: 'test', needs: ['build'] }] });
  });

  it('a project without a pipeline answers 404 no_pipeline', async () => {
    const projectId = await newProject();
    const res = await t.app.inject({ method: 'GET', url: `/api/v1/projects/${projectId}/pipeline`, headers: owner.headers });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'no_pipeline' });
  });

  it('an invalid pipeline is a 400 problem listing each error with its line and column; nothing is stored', async () => {
    const projectId = await newProject();
    const res = await put(projectId, 'steps:\n  - key: a\n    command: a\n    needs: [nope]\n  - key: b\n    comand: b\n');
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(res.json()).toMatchObject({
      code: 'invalid_pipeline',
      detail: 'Line 6, column 5: "comand" is not a field here. Did you mean "command"?',
      errors: [{ line: 6, column: 5, path: 'steps[1].comand', message: '"comand" is not a field here. Did you mean "command"?' }],
    });
    const semantic = await put(projectId, 'steps:\n  - key: a\n    command: a\n    needs: [nope]\n  - block: Go?\n    key: b\n');
    expect(semantic.json()).toMatchObject({
      detail: 'Line 4, column 13: needs "nope", but no step has that key; the keys are: a, b.',
      errors: [{ line: 4, column: 13, path: 'steps[0].needs[0]' }],
    });
    const none = await t.app.inject({ method: 'GET', url: `/api/v1/projects/${projectId}/pipeline`, headers: owner.headers });
    expect(none.statusCode).toBe(404);
  });

  it('refuses a missing body, a file over 1 MiB (located) and a body past the limit', async () => {
    const projectId = await newProject();
    const empty = await t.app.inject({ method: 'PUT', url: `/api/v1/projects/${projectId}/pipeline`, headers: owner.headers });
    expect(empty.statusCode).toBe(400);
    expect(empty.json()).toMatchObject({ code: 'body_required' });
    const big = await put(projectId, `# ${'x'.repeat(1024 * 1024)}\nsteps: [wait]\n`);
    expect(big.statusCode).toBe(400);
    expect(big.json()).toMatchObject({ code: 'invalid_pipeline', errors: [{ line: 1, column: 1 }] });
    const huge = await put(projectId, 'x'.repeat(3 * 1024 * 1024 + 1));
    expect(huge.statusCode).toBe(413);
    const form = await put(projectId, 'a=b', 'application/x-www-form-urlencoded');
    expect(form.statusCode).toBe(415);
  });

  it('viewers read, members write', async () => {
    const projectId = await newProject();
    expect((await put(projectId, PIPELINE)).statusCode).toBe(200);
    const viewer = await addUser(t, owner, 'viewer');
    expect((await put(projectId, PIPELINE, 'text/yaml', viewer)).statusCode).toBe(403);
    const read = await t.app.inject({ method: 'GET', url: `/api/v1/projects/${projectId}/pipeline`, headers: viewer.headers });
    expect(read.statusCode).toBe(200);
  });

  it('another organization gets a 404 on every pipeline route, and changes nothing', async () => {
    const projectId = await newProject();
    expect((await put(projectId, PIPELINE)).statusCode).toBe(200);
    const checked = await expectHiddenFromOtherOrgs(t, {
      pathPrefix: '/api/v1/projects/{id}/pipeline',
      params: { id: projectId },
      as: stranger,
      requests: {
        'PUT /api/v1/projects/{id}/pipeline': { headers: { 'content-type': 'text/yaml' }, payload: 'steps: [{command: pwned}]' },
      },
    });
    expect(checked).toBe(3);
    const still = await t.app.inject({ method: 'GET', url: `/api/v1/projects/${projectId}/pipeline`, headers: owner.headers });
    expect(still.json()).toMatchObject({ version: 1 });
  });
});

describe('validation without storing, and the schema', () => {
  it('validates for any signed-in user: the normalized form, or located errors', async () => {
    const viewer = await addUser(t, owner, 'viewer');
    const good = await t.app.inject({
      method: 'POST',
      url: '/api/v1/pipelines/validate',
      headers: { ...viewer.headers, 'content-type': 'text/yaml' },
      payload: PIPELINE,
    });
    expect(good.statusCode, good.body).toBe(200);
    expect(good.json()).toMatchObject({ valid: true, steps: 2, definition: { steps: [{ key: 'build' }, { key: 'test' }] } });
    const bad = await t.app.inject({
      method: 'POST',
      url: '/api/v1/pipelines/validate',
      headers: viewer.headers,
      payload: { source: 'steps:\n  - command: a\n    if: branch = "main"\n' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'invalid_pipeline', errors: [{ line: 3, column: 16, path: 'steps[0].if' }] });
    const anonymous = await t.app.inject({ method: 'POST', url: '/api/v1/pipelines/validate', payload: { source: PIPELINE } });
    expect(anonymous.statusCode).toBe(401);
  });

  it('publishes the JSON Schema without credentials, identical to docs/pipeline.schema.json', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/pipelines/schema.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/schema\+json/);
    expect(res.json()).toEqual(PIPELINE_SCHEMA);
    // If this fails, regenerate: npx tsx src/cli/index.ts pipeline schema > docs/pipeline.schema.json && npx prettier --write docs/pipeline.schema.json
    expect(JSON.parse(await readFile('docs/pipeline.schema.json', 'utf8'))).toEqual(PIPELINE_SCHEMA);
  });
});
