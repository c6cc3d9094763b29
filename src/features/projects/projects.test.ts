import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { addUser, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { expectHiddenFromOtherOrgs, expectNotListed } from '../../../test/helpers/tenancy.js';

let t: TestApp;
let alice: TestUser;
let bob: TestUser; // another organization

beforeAll(async () => {
  t = await buildTestApp();
  [alice, bob] = await Promise.all([createOrgAndLogin(t), createOrgAndLogin(t)]);
});
afterAll(() => t.close());

type Project = {
  id: string;
  slug: string;
  name: string;
  description: string;
  project_type: string;
  created_at: string;
  updated_at: string;
};

async function create(user: TestUser, payload: Record<string, unknown>) {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/projects', headers: user.headers, payload });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<Project>();
}

async function list(user: TestUser, query: string) {
  const res = await t.app.inject({ method: 'GET', url: `/api/v1/projects?${query}`, headers: user.headers });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<{ items: Project[]; next_cursor: string | null }>();
}

describe('projects', () => {
  it('create, get, update, delete — each audited', async () => {
    const p = await create(alice, {
      name: 'Payments API',
      description: 'Moves money',
      project_type: 'service',
      repository_url: 'https://git.example/pay',
    });
    expect(p).toMatchObject({ slug: 'payments-api', name: 'Payments API', project_type: 'service' });
    await expectAuditEvent(t, { orgId: alice.orgId, action: 'project.created', resourceId: p.id, actorId: alice.userId });

    const got = await t.app.inject({ method: 'GET', url: `/api/v1/projects/${p.id}`, headers: alice.headers });
    expect(got.json()).toEqual(p);

    const patched = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/projects/${p.id}`,
      headers: alice.headers,
      payload: { description: 'Moves money safely' },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ description: 'Moves money safely', slug: 'payments-api' });
    const audit = await expectAuditEvent(t, { orgId: alice.orgId, action: 'project.updated', resourceId: p.id });
    expect(audit.payload).toMatchObject({ before: { description: 'Moves money' }, after: { description: 'Moves money safely' } });

    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/projects/${p.id}`, headers: alice.headers });
    expect(del.statusCode).toBe(204);
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/projects/${p.id}`, headers: alice.headers })).statusCode).toBe(404);
    await expectAuditEvent(t, { orgId: alice.orgId, action: 'project.deleted', resourceId: p.id });
    // Soft delete frees the slug.
    expect((await create(alice, { name: 'Payments API' })).slug).toBe('payments-api');
  });

  it('refuses a duplicate slug with 409 and keeps the first', async () => {
    await create(alice, { name: 'Dup', slug: 'dup' });
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/projects',
      headers: alice.headers,
      payload: { name: 'Dup 2', slug: 'dup' },
    });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'slug_taken', slug: 'dup' });
    // The same slug in another organization is fine.
    await create(bob, { name: 'Dup', slug: 'dup' });
  });

  it('paginates with cursors, without gaps or repeats, in every sort order', async () => {
    const viewer = await createOrgAndLogin(t);
    const names = Array.from({ length: 7 }, (_, i) => `Paged ${String.fromCharCode(103 - i)}${i}`);
    for (const name of names) await create(viewer, { name });
    for (const sort of ['name', '-name', 'created_at', '-created_at', 'updated_at']) {
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page = await list(viewer, `limit=3&sort=${sort}${cursor ? `&cursor=${cursor}` : ''}`);
        expect(page.items.length).toBeLessThanOrEqual(3);
        seen.push(...page.items.map((p) => p.name));
        cursor = page.next_cursor;
      } while (cursor);
      expect(new Set(seen).size, sort).toBe(7);
      if (sort === 'name') expect(seen).toEqual([...names].sort());
      if (sort === '-name') expect(seen).toEqual([...names].sort().reverse());
    }
  });

  it('searches name, slug and description by word prefix, and filters by type', async () => {
    const u = await createOrgAndLogin(t);
    await create(u, { name: 'Deploy bot', description: 'Rolls services out', project_type: 'agent' });
    await create(u, { name: 'Web shop', description: 'Customer storefront', project_type: 'application' });
    expect((await list(u, 'q=depl')).items.map((p) => p.name)).toEqual(['Deploy bot']);
    expect((await list(u, 'q=storefr')).items.map((p) => p.name)).toEqual(['Web shop']);
    expect((await list(u, 'q=rolls%20serv')).items.map((p) => p.name)).toEqual(['Deploy bot']);
    expect((await list(u, 'q=%21%21%21')).items).toEqual([]);
    expect((await list(u, 'project_type=application')).items.map((p) => p.name)).toEqual(['Web shop']);
  });

  it('reports status with the last activity', async () => {
    const p = await create(alice, { name: 'Status probe' });
    const res = await t.app.inject({ method: 'GET', url: `/api/v1/projects/${p.id}/status`, headers: alice.headers });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ project: { id: p.id }, counts: { runs: 0, jobs: 0, open_approvals: 0 } });
    expect(res.json().last_activity_at).not.toBeNull();
  });

  it('lets viewers read but not write', async () => {
    const viewer = await addUser(t, alice, 'viewer');
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/projects', headers: viewer.headers })).statusCode).toBe(200);
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/projects',
      headers: viewer.headers,
      payload: { name: 'nope' },
    });
    expect(res.statusCode).toBe(403);
  });
});

describe('tenancy', () => {
  it("hides one organization's project from another on every project route, and in lists", async () => {
    const p = await create(alice, { name: 'Secret plans', description: 'classified' });
    const checked = await expectHiddenFromOtherOrgs(t, {
      pathPrefix: '/api/v1/projects/{id}',
      params: { id: p.id, environment: 'staging' },
      as: bob,
      bodies: {
        'PATCH /api/v1/projects/{id}': { name: 'pwned' },
        'POST /api/v1/projects/{id}/runs': {},
        'PUT /api/v1/projects/{id}/environments/{environment}': { requires_approval: false },
        'PUT /api/v1/projects/{id}/pipeline': { source: 'steps:\n  - command: pwned\n' },
        'POST /api/v1/projects/{id}/schedules': { name: 'pwned', cron: '0 * * * *' },
      },
    });
    expect(checked).toBeGreaterThanOrEqual(4);
    await expectNotListed(t, '/api/v1/projects', bob, p.id);
    await expectNotListed(t, '/api/v1/projects?q=secret', bob, p.id);
    // And nothing changed.
    const still = await t.app.inject({ method: 'GET', url: `/api/v1/projects/${p.id}`, headers: alice.headers });
    expect(still.json().name).toBe('Secret plans');
  });
});
