import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { addUser, createApiTokenFor, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { expectHiddenFromOtherOrgs, expectNotListed } from '../../../test/helpers/tenancy.js';
import { redactSecrets } from './audit.record.js';

let t: TestApp;
let alice: TestUser;
let bob: TestUser;
let projectId: string;

type AuditEvent = {
  id: string;
  action: string;
  actor: { id: string; type: string };
  resource: { type: string; id: string };
  project_id: string | null;
  request_id: string;
  payload: Record<string, unknown>;
};
type Page = { items: AuditEvent[]; next_cursor: string | null };

async function audit(user: { headers: Record<string, string> }, url: string) {
  const res = await t.app.inject({ method: 'GET', url, headers: user.headers });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<Page>();
}

beforeAll(async () => {
  t = await buildTestApp();
  [alice, bob] = await Promise.all([createOrgAndLogin(t), createOrgAndLogin(t)]);
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/projects',
    headers: { ...alice.headers, 'x-request-id': 'req-create-1' },
    payload: { name: 'Audited', description: 'first' },
  });
  projectId = res.json<{ id: string }>().id;
  await t.app.inject({
    method: 'PATCH',
    url: `/api/v1/projects/${projectId}`,
    headers: alice.headers,
    payload: { description: 'second' },
  });
});
afterAll(() => t.close());

describe('audit trail', () => {
  it('records who did what to which resource, with the request id and full payload', async () => {
    const page = await audit(alice, `/api/v1/audit?resource_type=project&resource_id=${projectId}`);
    expect(page.items.map((e) => e.action)).toEqual(['project.updated', 'project.created']);
    const created = page.items[1]!;
    expect(created).toMatchObject({
      actor: { id: alice.userId, type: 'user' },
      project_id: projectId,
      request_id: 'req-create-1',
    });
    expect(created.payload).toMatchObject({ after: { name: 'Audited', description: 'first' } });
    const one = await t.app.inject({ url: `/api/v1/audit/events/${created.id}`, headers: alice.headers });
    expect(one.json()).toEqual(created);
  });

  it('filters by action (exact and prefix), actor, project and time, and pages with cursors', async () => {
    expect((await audit(alice, '/api/v1/audit?action=project.created')).items.every((e) => e.action === 'project.created')).toBe(
      true,
    );
    const prefixed = await audit(alice, '/api/v1/audit?action=project.*');
    expect(new Set(prefixed.items.map((e) => e.action))).toEqual(new Set(['project.created', 'project.updated']));
    expect((await audit(alice, `/api/v1/audit?actor_id=${alice.userId}`)).items.length).toBeGreaterThanOrEqual(3);
    expect((await audit(alice, `/api/v1/audit/projects/${projectId}`)).items).toHaveLength(2);
    expect((await audit(alice, `/api/v1/audit/resources/project/${projectId}`)).items).toHaveLength(2);
    expect((await audit(alice, '/api/v1/audit?since=2999-01-01T00:00:00Z')).items).toEqual([]);

    const all: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Page = await audit(alice, `/api/v1/audit?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      all.push(...page.items.map((e) => e.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(new Set(all).size).toBe(all.length);
    expect(all.length).toBe((await audit(alice, '/api/v1/audit?limit=200')).items.length);
  });

  it('is readable by admins and owners only', async () => {
    const member = await addUser(t, alice, 'member');
    expect((await t.app.inject({ url: '/api/v1/audit', headers: member.headers })).statusCode).toBe(403);
    const admin = await addUser(t, alice, 'admin');
    expect((await t.app.inject({ url: '/api/v1/audit', headers: admin.headers })).statusCode).toBe(200);
    const token = await createApiTokenFor(t, alice, ['projects:read']);
    expect((await t.app.inject({ url: '/api/v1/audit', headers: token.headers })).statusCode).toBe(403);
  });

  it('never crosses organizations', async () => {
    const event = (await audit(alice, `/api/v1/audit/projects/${projectId}`)).items[0]!;
    await expectHiddenFromOtherOrgs(t, { pathPrefix: '/api/v1/audit/events/{id}', params: { id: event.id }, as: bob });
    await expectNotListed(t, '/api/v1/audit?limit=200', bob, event.id);
    expect((await audit(bob, `/api/v1/audit/projects/${projectId}`)).items).toEqual([]);
    expect((await audit(bob, `/api/v1/audit/resources/project/${projectId}`)).items).toEqual([]);
  });

  it('never stores secrets', async () => {
    const token = await createApiTokenFor(t, alice, ['projects:read']);
    const events = await audit(alice, `/api/v1/audit/resources/api_token/${token.id}`);
    expect(JSON.stringify(events)).not.toContain(token.token);
    expect(redactSecrets({ password: 'x', nested: { refresh_token: 'y', ok: 1 }, list: [{ secret: 's' }] })).toEqual({
      password: '[redacted]',
      nested: { refresh_token: '[redacted]', ok: 1 },
      list: [{ secret: '[redacted]' }],
    });
  });
});
