import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { addUser, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import type { PipelineDefinition } from '../pipelines/pipeline.model.js';
import { insertPipelineVersion } from '../runs/runs.queries.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url));

const definition: PipelineDefinition = {
  env: {},
  steps: [
    { type: 'command', key: 'ci', label: 'CI', needs: [], commands: ['make'], pool: 'ci', tags: {}, env: {}, artifacts: [] },
  ],
};

let t: TestApp;
let owner: TestUser;
let stranger: TestUser;
let projectId: string;
let secret: string;

async function newProject(user: TestUser, withPipeline = true): Promise<string> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/projects',
    headers: user.headers,
    payload: { name: `Hooked ${randomUUID()}` },
  });
  const id = res.json<{ id: string }>().id;
  if (withPipeline) {
    await insertPipelineVersion(t.deps.db, { orgId: user.orgId, projectId: id, source: '# test', definition, createdBy: 'test' });
  }
  return id;
}

async function rotate(user: TestUser, project: string): Promise<string> {
  const res = await t.app.inject({ method: 'POST', url: `/api/v1/projects/${project}/webhook-secret`, headers: user.headers });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ secret: string }>().secret;
}

beforeAll(async () => {
  t = await buildTestApp();
  [owner, stranger] = await Promise.all([createOrgAndLogin(t), createOrgAndLogin(t)]);
  projectId = await newProject(owner);
  secret = await rotate(owner, projectId);
});
afterAll(() => t.close());

const sign = (body: Buffer, key = secret) => `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;

interface Delivery {
  event: string;
  body: Buffer;
  id?: string;
  signature?: string | null;
  project?: string;
  contentType?: string;
}

function github(d: Delivery) {
  const headers: Record<string, string> = {
    'content-type': d.contentType ?? 'application/json',
    'x-github-event': d.event,
    'x-github-delivery': d.id ?? randomUUID(),
    'user-agent': 'GitHub-Hookshot/a1b2c3d',
    'x-github-hook-id': '109948940',
  };
  const signature = d.signature === undefined ? sign(d.body) : d.signature;
  if (signature !== null) headers['x-hub-signature-256'] = signature;
  return t.app.inject({ method: 'POST', url: `/api/v1/hooks/github/${d.project ?? projectId}`, headers, payload: d.body });
}

function gitlab(d: { event: string; body: Buffer; token?: string | null; uuid?: string; project?: string }) {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-gitlab-event': d.event,
    'user-agent': 'GitLab/17.0.0',
    'x-gitlab-instance': 'https://gitlab.example.com',
  };
  if (d.uuid) headers['x-gitlab-event-uuid'] = d.uuid;
  const token = d.token === undefined ? secret : d.token;
  if (token !== null) headers['x-gitlab-token'] = token;
  return t.app.inject({ method: 'POST', url: `/api/v1/hooks/gitlab/${d.project ?? projectId}`, headers, payload: d.body });
}

async function runCount(project = projectId): Promise<number> {
  const { rows } = await t.deps.db.query<{ n: number }>('SELECT count(*)::int AS n FROM runs WHERE project_id = $1', [project]);
  return rows[0]!.n;
}

async function run(id: string) {
  const res = await t.app.inject({ method: 'GET', url: `/api/v1/runs/${id}`, headers: owner.headers });
  return res.json<{ trigger: string; branch: string; commit: string; message: string; event: string; created_by: string }>();
}

describe('GitHub webhooks', () => {
  it('answers ping with pong and starts nothing', async () => {
    const res = await github({ event: 'ping', body: fixture('github-ping') });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ outcome: 'pong', zen: 'Responsive is better than fast.' });
    expect(await runCount()).toBe(0);
  });

  it('a signed push starts one run for its branch and commit; a replayed delivery starts none', async () => {
    const body = fixture('github-push');
    const delivery = randomUUID();
    const res = await github({ event: 'push', body, id: delivery });
    expect(res.statusCode, res.body).toBe(201);
    const answer = res.json<{ run_id: string; outcome: string; duplicate: boolean }>();
    expect(answer).toMatchObject({ outcome: 'started', duplicate: false });
    expect(await run(answer.run_id)).toMatchObject({
      trigger: 'webhook',
      event: 'push',
      branch: 'main',
      commit: '6113728f27ae82c7b1a177c8d03f9e96e0adf246',
      message: 'Update README.md\n\nExplain how to run the service locally.',
      created_by: 'system:webhook:github',
    });
    const before = await runCount();
    const replay = await github({ event: 'push', body, id: delivery });
    expect(replay.statusCode).toBe(200);
    expect(replay.json()).toMatchObject({ duplicate: true, run_id: answer.run_id, outcome: 'started' });
    expect(await runCount()).toBe(before);
  });

  it('starts one run for one delivery id even when it arrives several times at once', async () => {
    const before = await runCount();
    const id = randomUUID();
    const answers = await Promise.all([1, 2, 3].map(() => github({ event: 'push', body: fixture('github-push'), id })));
    // One handles it (201); the others are duplicates — 200 once it started, 202 while it is being handled.
    expect(answers.filter((r) => r.statusCode === 201)).toHaveLength(1);
    const duplicates = answers.filter((r) => r.statusCode !== 201);
    for (const r of duplicates)
      expect(r.json(), r.body).toMatchObject({ duplicate: true, outcome: expect.stringMatching(/^(received|started)$/) });
    expect(await runCount()).toBe(before + 1);
  });

  it('refuses a wrong, missing or foreign signature, and an unknown project, alike with 401 — nothing starts', async () => {
    const body = fixture('github-push');
    const other = await newProject(stranger);
    await rotate(stranger, other);
    const before = await runCount();
    const attempts = [
      github({ event: 'push', body, signature: sign(body, 'not the secret') }),
      github({ event: 'push', body, signature: null }),
      github({ event: 'push', body, signature: 'sha256=zz' }),
      github({ event: 'push', body, signature: sign(Buffer.from('{}')) }), // signs other bytes
      github({ event: 'push', body, project: randomUUID() }),
      github({ event: 'push', body, project: other }), // our secret, their project
    ];
    const answers = await Promise.all(attempts);
    for (const res of answers) {
      expect(res.statusCode, res.body).toBe(401);
      expect(res.headers['content-type']).toMatch(/problem\+json/);
      expect(res.json()).toMatchObject({ code: 'invalid_signature', detail: answers[0]!.json().detail });
    }
    expect(await runCount()).toBe(before);
    expect(await runCount(other)).toBe(0);
  });

  it('answers malformed payloads and headers after a valid signature with 400', async () => {
    const before = await runCount();
    const push = JSON.parse(fixture('github-push').toString()) as Record<string, unknown>;
    const cases: Delivery[] = [
      { event: 'push', body: Buffer.from('{"ref": "refs/heads/main", ') },
      { event: 'push', body: Buffer.from('[1, 2, 3]') },
      { event: 'push', body: Buffer.from(JSON.stringify({ ...push, after: undefined })) },
      { event: 'push', body: Buffer.from(JSON.stringify({ ...push, after: 'not-a-commit' })) },
      { event: 'push', body: Buffer.from(JSON.stringify({ ...push, ref: 42 })) },
      { event: 'pull_request', body: Buffer.from(JSON.stringify({ action: 'opened', pull_request: { head: {} } })) },
      { event: 'push', body: Buffer.from('payload=%7Bnope'), contentType: 'application/x-www-form-urlencoded' },
    ];
    for (const d of cases) {
      const res = await github(d);
      expect(res.statusCode, `${d.body.toString().slice(0, 60)}: ${res.body}`).toBe(400);
      expect(res.headers['content-type']).toMatch(/problem\+json/);
    }
    const noDelivery = await t.app.inject({
      method: 'POST',
      url: `/api/v1/hooks/github/${projectId}`,
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'push',
        'x-hub-signature-256': sign(fixture('github-push')),
      },
      payload: fixture('github-push'),
    });
    expect(noDelivery.json()).toMatchObject({ status: 400, code: 'missing_delivery_id' });
    expect(await runCount()).toBe(before);
  });

  it('runs pull requests opened, synchronized or reopened; ignores other actions, tags and deleted branches', async () => {
    const opened = await github({ event: 'pull_request', body: fixture('github-pull_request') });
    expect(opened.statusCode, opened.body).toBe(201);
    expect(await run(opened.json<{ run_id: string }>().run_id)).toMatchObject({
      branch: 'changes',
      commit: 'ec26c3e57ca3a959ca5aad62de7213c562f8c821',
      event: 'pull_request',
      message: 'Update the README with new information.',
    });
    const before = await runCount();
    for (const [event, name] of [
      ['pull_request', 'github-pull_request-closed'],
      ['push', 'github-push-tag'],
      ['push', 'github-push-delete'],
      ['issues', 'github-ping'],
    ] as const) {
      const res = await github({ event, body: fixture(name) });
      expect(res.statusCode, `${name}: ${res.body}`).toBe(202);
      expect(res.json().outcome).toBe('ignored');
    }
    expect(await runCount()).toBe(before);
  });

  it('accepts the form-encoded content type GitHub can be set to send', async () => {
    const body = Buffer.from(`payload=${encodeURIComponent(fixture('github-push').toString())}`);
    const res = await github({ event: 'push', body, contentType: 'application/x-www-form-urlencoded' });
    expect(res.statusCode, res.body).toBe(201);
  });

  it('accepts a project without a pipeline with 202 and the reason', async () => {
    const bare = await newProject(owner, false);
    const key = await rotate(owner, bare);
    const body = fixture('github-push');
    const res = await github({ event: 'push', body, project: bare, signature: sign(body, key) });
    expect(res.statusCode, res.body).toBe(202);
    expect(res.json()).toMatchObject({ outcome: 'ignored', reason: expect.stringMatching(/no pipeline/) });
  });
});

describe('GitLab webhooks', () => {
  it('a push with the token starts a run of checkout_sha; the same event UUID again starts none', async () => {
    const uuid = randomUUID();
    const res = await gitlab({ event: 'Push Hook', body: fixture('gitlab-push'), uuid });
    expect(res.statusCode, res.body).toBe(201);
    const runId = res.json<{ run_id: string }>().run_id;
    expect(await run(runId)).toMatchObject({
      branch: 'master',
      commit: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
      message: 'fixed readme',
      event: 'push',
      created_by: 'system:webhook:gitlab',
    });
    const before = await runCount();
    const replay = await gitlab({ event: 'Push Hook', body: fixture('gitlab-push'), uuid });
    expect(replay.json()).toMatchObject({ duplicate: true, run_id: runId });
    expect(await runCount()).toBe(before);
  });

  it('refuses a wrong or missing token with 401', async () => {
    const before = await runCount();
    for (const token of ['wrong', null, `${secret}x`]) {
      const res = await gitlab({ event: 'Push Hook', body: fixture('gitlab-push'), token });
      expect(res.statusCode).toBe(401);
    }
    expect(await runCount()).toBe(before);
  });

  it('runs a merge request opened; ignores title edits, deleted branches and other events', async () => {
    const res = await gitlab({ event: 'Merge Request Hook', body: fixture('gitlab-merge_request'), uuid: randomUUID() });
    expect(res.statusCode, res.body).toBe(201);
    expect(await run(res.json<{ run_id: string }>().run_id)).toMatchObject({
      branch: 'ms-viewport',
      commit: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
      event: 'pull_request',
      message: 'MS-Viewport',
    });
    for (const [event, name] of [
      ['Merge Request Hook', 'gitlab-merge_request-update-title'],
      ['Push Hook', 'gitlab-push-delete'],
      ['Tag Push Hook', 'gitlab-push'],
    ] as const) {
      const ignored = await gitlab({ event, body: fixture(name), uuid: randomUUID() });
      expect(ignored.statusCode, `${name}: ${ignored.body}`).toBe(202);
    }
    const broken = await gitlab({ event: 'Merge Request Hook', body: Buffer.from('{"object_attributes": {"action": "open"}}') });
    expect(broken.statusCode).toBe(400);
  });
});

describe('webhook secrets and deliveries', () => {
  it('is stored sealed, shown once, audited; rotating stops the old one', async () => {
    const project = await newProject(owner);
    const first = await rotate(owner, project);
    const { rows } = await t.deps.db.query<{ sealed: Uint8Array }>(
      'SELECT sealed FROM project_webhook_secrets WHERE project_id = $1',
      [project],
    );
    expect(Buffer.from(rows[0]!.sealed).includes(Buffer.from(first))).toBe(false);
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'project.webhook_secret_rotated', resourceId: project });
    const second = await rotate(owner, project);
    const body = fixture('github-push');
    expect((await github({ event: 'push', body, project, signature: sign(body, first) })).statusCode).toBe(401);
    expect((await github({ event: 'push', body, project, signature: sign(body, second) })).statusCode).toBe(201);
  });

  it('lists deliveries with their outcomes for admins only', async () => {
    const url = `/api/v1/projects/${projectId}/webhook-deliveries`;
    const res = await t.app.inject({ method: 'GET', url: `${url}?limit=3`, headers: owner.headers });
    expect(res.statusCode, res.body).toBe(200);
    const page = res.json<{ items: { outcome: string; event: string }[]; next_cursor: string }>();
    expect(page.items).toHaveLength(3);
    const next = await t.app.inject({
      method: 'GET',
      url: `${url}?limit=200&cursor=${page.next_cursor}`,
      headers: owner.headers,
    });
    const all = [...page.items, ...next.json<{ items: { outcome: string; event: string }[] }>().items];
    expect(new Set(all.map((d) => d.outcome))).toEqual(new Set(['pong', 'started', 'ignored']));
    const started = await t.app.inject({ method: 'GET', url: `${url}?outcome=started`, headers: owner.headers });
    expect(started.json<{ items: { outcome: string }[] }>().items.every((d) => d.outcome === 'started')).toBe(true);

    const member = await addUser(t, owner, 'member');
    expect((await t.app.inject({ method: 'GET', url, headers: member.headers })).statusCode).toBe(403);
    const rotateAsMember = await t.app.inject({
      method: 'POST',
      url: `/api/v1/projects/${projectId}/webhook-secret`,
      headers: member.headers,
    });
    expect(rotateAsMember.statusCode).toBe(403);
  });
});
