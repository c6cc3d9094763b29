import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { addUser, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { claim, createPool, enqueueBatch, registerAgent } from '../../../test/helpers/queue.js';
import { expectHiddenFromOtherOrgs, expectNotListed } from '../../../test/helpers/tenancy.js';

let t: TestApp;
let owner: TestUser;
let stranger: TestUser; // another organization

beforeAll(async () => {
  t = await buildTestApp();
  [owner, stranger] = await Promise.all([createOrgAndLogin(t), createOrgAndLogin(t)]);
});
afterAll(() => t.close());

describe('pools', () => {
  it('create shows the registration token once; get, list, update, scale; all audited', async () => {
    const pool = await createPool(t, owner, 'builders');
    expect(pool.registrationToken).toMatch(/^cairn_reg_/);
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'pool.created', resourceId: pool.id });
    const got = await t.app.inject({ method: 'GET', url: '/api/v1/pools/builders', headers: owner.headers });
    expect(got.statusCode).toBe(200);
    expect(got.body).not.toContain(pool.registrationToken);
    expect(got.json()).toMatchObject({ name: 'builders', desired_capacity: 0, figures: { queued: 0, agents_needed: 0 } });

    const scaled = await t.app.inject({
      method: 'POST',
      url: '/api/v1/pools/builders/scale',
      headers: owner.headers,
      payload: { desired_capacity: 3 },
    });
    expect(scaled.json()).toMatchObject({ desired_capacity: 3, figures: { agents_needed: 3 } });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'pool.scaled', resourceId: pool.id });

    const renamed = await t.app.inject({
      method: 'PATCH',
      url: '/api/v1/pools/builders',
      headers: owner.headers,
      payload: { name: 'builders-2', description: 'x' },
    });
    expect(renamed.json()).toMatchObject({ name: 'builders-2', description: 'x' });
    const list = await t.app.inject({ method: 'GET', url: '/api/v1/pools', headers: owner.headers });
    expect(list.json<{ items: { name: string }[] }>().items.map((p) => p.name)).toContain('builders-2');
  });

  it('live figures: agents by state, queue by priority, oldest age, scaling signal', async () => {
    const pool = await createPool(t, owner, 'figures');
    const agent = await registerAgent(t, pool, { max_concurrency: 2 });
    await enqueueBatch(t, owner, [
      { pool: 'figures', priority: 'HIGH' },
      { pool: 'figures' },
      { pool: 'figures' },
      { pool: 'figures', priority: 'LOW' },
      { pool: 'figures', delay_seconds: 3600 },
    ]);
    await claim(t, agent, 1);
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/pools/figures', headers: owner.headers });
    const figures = res.json<{ figures: Record<string, unknown> }>().figures;
    expect(figures).toMatchObject({
      agents: { busy: 1 },
      active_agents: 1,
      slots: 2,
      queued: 3,
      queued_by_priority: { CRITICAL: 0, HIGH: 0, NORMAL: 2, LOW: 1 },
      scheduled: 1,
      running: 1,
      // 3 queued + 1 running need 4 slots; the one agent has 2: one more agent of 2.
      agents_needed: 1,
    });
    expect(figures.oldest_queued_age_seconds).toBeGreaterThanOrEqual(0);
  });

  it('rotating the registration token retires the old one at once', async () => {
    const pool = await createPool(t, owner, 'rotating');
    await registerAgent(t, pool);
    const rotated = await t.app.inject({
      method: 'POST',
      url: '/api/v1/pools/rotating/registration-token',
      headers: owner.headers,
    });
    const fresh = rotated.json<{ registration_token: string }>().registration_token;
    expect(fresh).not.toBe(pool.registrationToken);
    const old = await t.app.inject({
      method: 'POST',
      url: '/api/v1/agents',
      headers: { authorization: `Bearer ${pool.registrationToken}` },
      payload: { name: 'late' },
    });
    expect(old.statusCode).toBe(401);
    await registerAgent(t, { ...pool, registrationToken: fresh });
  });

  it('a pool in use cannot be deleted; an empty one can; names are unique', async () => {
    const pool = await createPool(t, owner, 'busy');
    const agent = await registerAgent(t, pool);
    const refused = await t.app.inject({ method: 'DELETE', url: '/api/v1/pools/busy', headers: owner.headers });
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ code: 'pool_in_use', agents: 1 });
    await t.app.inject({ method: 'DELETE', url: `/api/v1/agents/${agent.id}`, headers: owner.headers });
    const deleted = await t.app.inject({ method: 'DELETE', url: '/api/v1/pools/busy', headers: owner.headers });
    expect(deleted.statusCode).toBe(204);
    // The registration token of a deleted pool no longer registers anything.
    const late = await t.app.inject({
      method: 'POST',
      url: '/api/v1/agents',
      headers: { authorization: `Bearer ${pool.registrationToken}` },
      payload: { name: 'late' },
    });
    expect(late.statusCode).toBe(401);
    await createPool(t, owner, 'dup');
    const dup = await t.app.inject({ method: 'POST', url: '/api/v1/pools', headers: owner.headers, payload: { name: 'dup' } });
    expect(dup.statusCode).toBe(409);
  });

  it('members may read pools but not manage them; viewers too', async () => {
    const member = await addUser(t, owner, 'member');
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/pools', headers: member.headers })).statusCode).toBe(200);
    const create = await t.app.inject({
      method: 'POST',
      url: '/api/v1/pools',
      headers: member.headers,
      payload: { name: 'nope' },
    });
    expect(create.statusCode).toBe(403);
  });

  it('another organization’s pool is a 404 on every route and never listed', async () => {
    const pool = await createPool(t, owner, 'private');
    const routes = await expectHiddenFromOtherOrgs(t, {
      pathPrefix: '/api/v1/pools/{name}',
      params: { name: pool.name },
      as: stranger,
      bodies: {
        'PATCH /api/v1/pools/{name}': { description: 'mine now' },
        'POST /api/v1/pools/{name}/scale': { desired_capacity: 9 },
      },
    });
    expect(routes).toBeGreaterThanOrEqual(5);
    await expectNotListed(t, '/api/v1/pools', stranger, pool.id);
    // And its name is free in the other organization.
    await createPool(t, stranger, 'private');
  });
});
