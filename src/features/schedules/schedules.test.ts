import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { addUser, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { expectHiddenFromOtherOrgs, expectNotListed } from '../../../test/helpers/tenancy.js';

let t: TestApp;
let owner: TestUser;
let stranger: TestUser;
let projectId: string;

type Schedule = {
  id: string;
  name: string;
  cron: string;
  timezone: string;
  enabled: boolean;
  next_run_at: string | null;
  next_runs?: string[];
  missed: string;
};

beforeAll(async () => {
  t = await buildTestApp();
  [owner, stranger] = await Promise.all([createOrgAndLogin(t), createOrgAndLogin(t)]);
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/projects', headers: owner.headers, payload: { name: 'Cron' } });
  projectId = res.json<{ id: string }>().id;
});
afterAll(() => t.close());

const post = (payload: Record<string, unknown>, user = owner, project = projectId) =>
  t.app.inject({ method: 'POST', url: `/api/v1/projects/${project}/schedules`, headers: user.headers, payload });

async function create(payload: Record<string, unknown>): Promise<Schedule> {
  const res = await post(payload);
  expect(res.statusCode, res.body).toBe(201);
  return res.json<Schedule>();
}

async function list(query: string, url = '/api/v1/schedules') {
  const res = await t.app.inject({ method: 'GET', url: `${url}?${query}`, headers: owner.headers });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<{ items: Schedule[]; next_cursor: string | null }>();
}

describe('schedules API', () => {
  it('creates, reads with a preview of the next runs, updates and deletes — each audited', async () => {
    const s = await create({
      name: 'nightly',
      cron: '30 2 * * *',
      timezone: 'Europe/Berlin',
      branch: 'main',
      env: { MODE: 'full' },
    });
    expect(s).toMatchObject({ name: 'nightly', enabled: true, missed: 'skip', timezone: 'Europe/Berlin' });
    expect(Date.parse(s.next_run_at!)).toBeGreaterThan(Date.now());
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'schedule.created', resourceId: s.id, actorId: owner.userId });

    const got = await t.app.inject({ method: 'GET', url: `/api/v1/schedules/${s.id}?preview=5`, headers: owner.headers });
    expect(got.statusCode).toBe(200);
    const runs = got.json<Schedule>().next_runs!;
    expect(runs).toHaveLength(5);
    expect(runs[0]).toBe(s.next_run_at);
    // 02:30 in Berlin is 00:30 or 01:30 UTC, one day apart.
    for (const r of runs) expect(r).toMatch(/T0[01]:30:00\.000Z$/);

    const off = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/schedules/${s.id}`,
      headers: owner.headers,
      payload: { enabled: false },
    });
    expect(off.json()).toMatchObject({ enabled: false, next_run_at: null });
    const on = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/schedules/${s.id}`,
      headers: owner.headers,
      payload: { enabled: true, cron: '@hourly', timezone: 'UTC' },
    });
    expect(on.json<Schedule>().next_run_at).toMatch(/T\d\d:00:00\.000Z$/);
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'schedule.updated', resourceId: s.id });

    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/schedules/${s.id}`, headers: owner.headers });
    expect(del.statusCode).toBe(204);
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/schedules/${s.id}`, headers: owner.headers })).statusCode).toBe(
      404,
    );
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'schedule.deleted', resourceId: s.id });
  });

  it('answers a bad expression or time zone with a 400 naming the field and what is wrong', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ cron: '61 * * * *' }, 'cron', /minute: 61/],
      [{ cron: '* * *' }, 'cron', /expected 5 fields .* got 3/],
      [{ cron: '0 0 30 2 *' }, 'cron', /never fires/],
      [{ cron: '0 * * * *', timezone: 'Europe/Atlantis' }, 'timezone', /unknown time zone "Europe\/Atlantis"/],
    ];
    for (const [body, field, message] of cases) {
      const res = await post({ name: 'bad', ...body });
      expect(res.statusCode, res.body).toBe(400);
      expect(res.headers['content-type']).toMatch(/problem\+json/);
      expect(res.json().errors).toEqual([{ field, message: expect.stringMatching(message) }]);
    }
    const s = await create({ name: 'fine', cron: '0 * * * *' });
    const patch = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/schedules/${s.id}`,
      headers: owner.headers,
      payload: { timezone: 'Nowhere/Land' },
    });
    expect(patch.statusCode).toBe(400);
    expect(patch.json().errors[0].field).toBe('timezone');
  });

  it('refuses a second schedule of the same name in a project with 409', async () => {
    await create({ name: 'twice', cron: '0 * * * *' });
    const res = await post({ name: 'twice', cron: '5 * * * *' });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'schedule_name_taken' });
  });

  it('lists with filters, sorts and cursor pages without gaps or repeats', async () => {
    const other = (
      await t.app.inject({ method: 'POST', url: '/api/v1/projects', headers: owner.headers, payload: { name: 'Cron two' } })
    ).json<{ id: string }>().id;
    const names = ['m1', 'm2', 'm3', 'm4', 'm5'];
    for (const [i, name] of names.entries()) {
      await create({ name, cron: `${i} ${i} * * *`, enabled: i !== 2 });
    }
    const res = await post({ name: 'elsewhere', cron: '0 0 * * *' }, owner, other);
    expect(res.statusCode).toBe(201);

    for (const sort of ['next_run_at', '-next_run_at', 'name', '-name', 'created_at', '-created_at']) {
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page = await list(`limit=2&sort=${sort}&project_id=${projectId}${cursor ? `&cursor=${cursor}` : ''}`);
        seen.push(...page.items.map((s) => s.name));
        cursor = page.next_cursor;
      } while (cursor);
      expect(new Set(seen).size, sort).toBe(seen.length);
      expect(seen.filter((n) => names.includes(n)).length, sort).toBe(5);
      expect(seen, sort).not.toContain('elsewhere');
      if (sort === 'name') expect(seen.filter((n) => names.includes(n))).toEqual(names);
      if (sort === 'next_run_at') expect(seen.at(-1)).toBe('m3'); // disabled: nothing ahead, sorts last
    }
    expect((await list('enabled=false')).items.map((s) => s.name)).toEqual(['m3']);
    const inProject = await list('limit=200', `/api/v1/projects/${other}/schedules`);
    expect(inProject.items.map((s) => s.name)).toEqual(['elsewhere']);
    const bad = await t.app.inject({ method: 'GET', url: '/api/v1/schedules?cursor=WyJ4IiwieSJd', headers: owner.headers });
    expect(bad.statusCode).toBe(400);
  });

  it('lets viewers read but not write; members write', async () => {
    const viewer = await addUser(t, owner, 'viewer');
    const member = await addUser(t, owner, 'member');
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/schedules', headers: viewer.headers })).statusCode).toBe(200);
    expect((await post({ name: 'viewer', cron: '0 * * * *' }, viewer)).statusCode).toBe(403);
    expect((await post({ name: 'member', cron: '0 * * * *' }, member)).statusCode).toBe(201);
  });

  it("hides one organization's schedules from another on every route and in lists", async () => {
    const s = await create({ name: 'secret', cron: '0 * * * *' });
    await expectHiddenFromOtherOrgs(t, {
      pathPrefix: '/api/v1/schedules/{id}',
      params: { id: s.id },
      as: stranger,
      bodies: { 'PATCH /api/v1/schedules/{id}': { name: 'pwned' } },
    });
    expect((await post({ name: 'x', cron: '0 * * * *' }, stranger)).statusCode).toBe(404);
    await expectNotListed(t, '/api/v1/schedules', stranger, s.id);
    const still = await t.app.inject({ method: 'GET', url: `/api/v1/schedules/${s.id}`, headers: owner.headers });
    expect(still.json().name).toBe('secret');
  });
});
