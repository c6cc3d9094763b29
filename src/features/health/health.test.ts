import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { addUser, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';

let t: TestApp;
let owner: TestUser;
beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
});
afterAll(() => t.close());

describe('probes', () => {
  it('liveness answers on every alias the seeds name', async () => {
    for (const url of ['/health', '/healthz', '/api/v1/health', '/api/v1/liveness']) {
      const res = await t.app.inject({ url });
      expect(res.statusCode, url).toBe(200);
      expect(res.json().status).toBe('ok');
    }
  });

  it('readiness reports each component', async () => {
    const res = await t.app.inject({ url: '/health/ready' });
    expect(res.statusCode).toBe(200);
    const names = res.json<{ components: { name: string; ok: boolean }[] }>().components.map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(['database', 'migrations']));
    if (t.deps.redis) expect(names).toContain('redis');
  });

  it('detailed status is for admins only', async () => {
    const viewer = await addUser(t, owner, 'viewer');
    expect((await t.app.inject({ url: '/health/detailed', headers: viewer.headers })).statusCode).toBe(403);
    expect((await t.app.inject({ url: '/health/detailed' })).statusCode).toBe(401);
    const res = await t.app.inject({ url: '/health/detailed', headers: owner.headers });
    expect(res.statusCode).toBe(200);
    expect(res.json().components.find((c: { name: string }) => c.name === 'database').version).toMatch(/^\d+/);
  });

  it('echoes a given request id and makes one otherwise', async () => {
    const given = await t.app.inject({ url: '/health', headers: { 'x-request-id': 'trace-123' } });
    expect(given.headers['x-request-id']).toBe('trace-123');
    const made = await t.app.inject({ url: '/health', headers: { 'x-request-id': 'bad id with spaces' } });
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('serves metrics with the HTTP latency histogram', async () => {
    await t.app.inject({ url: '/health' });
    const res = await t.app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/cairn_http_request_duration_seconds_bucket\{.*route="\/health".*status_code="200"/);
    expect(res.body).toContain('cairn_process_resident_memory_bytes');
  });

  it('sets security headers and gzips large responses', async () => {
    const res = await t.app.inject({ url: '/openapi.json', headers: { 'accept-encoding': 'gzip' } });
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(res.headers['content-encoding']).toBe('gzip');
  });
});

describe('readiness with Redis configured but unreachable', () => {
  it('stays 200, reports degraded and says what is degraded', async () => {
    // Port 1: nothing listens there, so Redis is unreachable from the start.
    const degraded = await buildTestApp({ REDIS_URL: 'redis://127.0.0.1:1' });
    try {
      const res = await degraded.app.inject({ url: '/health/ready' });
      expect(res.statusCode).toBe(200);
      const body = res.json<{ status: string; components: { name: string; ok: boolean; detail: string }[] }>();
      expect(body.status).toBe('degraded');
      expect(body.components.find((c) => c.name === 'database')).toMatchObject({ ok: true });
      expect(body.components.find((c) => c.name === 'redis')).toMatchObject({
        ok: false,
        detail: expect.stringMatching(/^unreachable/),
      });
      expect(body.components.find((c) => c.name === 'bus')?.detail).toMatch(/this replica/);
    } finally {
      await degraded.close();
    }
  });
});

describe('readiness without a database', () => {
  it('is 503 and names the database', async () => {
    const broken = await buildTestApp();
    await broken.deps.db.close();
    const res = await broken.app.inject({ url: '/health/ready' });
    expect(res.statusCode).toBe(503);
    const db = res
      .json<{ components: { name: string; ok: boolean; detail: string }[] }>()
      .components.find((c) => c.name === 'database');
    expect(db).toMatchObject({ ok: false });
    expect(db!.detail).toMatch(/unreachable/);
    await broken.app.close();
    broken.deps.authenticator.close();
    broken.deps.redis?.disconnect();
  });
});
