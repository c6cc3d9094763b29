import { SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { addUser, createApiTokenFor, createOrgAndLogin, login, type TestUser } from '../../../test/helpers/auth.js';
import { AUDIENCE, ISSUER, signAccessToken } from './tokens.js';

let t: TestApp;
let owner: TestUser;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
});
afterAll(() => t.close());

const session = (headers: Record<string, string>) => t.app.inject({ method: 'GET', url: '/api/v1/auth/session', headers });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('login', () => {
  it('returns an access token that describes the session', async () => {
    const res = await session(owner.headers);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      valid: true,
      kind: 'session',
      user_id: owner.userId,
      organization_id: owner.orgId,
      role: 'owner',
    });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'session.created', actorId: owner.userId });
  });

  it('refuses a wrong password and an unknown email alike', async () => {
    for (const payload of [
      { email: owner.email, password: 'wrong password' },
      { email: 'nobody@example.test', password: 'whatever' },
    ]) {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ code: 'invalid_login', status: 401 });
    }
  });

  it('throttles an account after repeated failures, even with the right password', async () => {
    const victim = await addUser(t, owner, 'member');
    for (let i = 0; i < 10; i++) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        payload: { email: victim.email, password: 'nope' },
      });
      expect(res.statusCode).toBe(401);
    }
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      payload: { email: victim.email, password: victim.password },
    });
    expect(res.statusCode).toBe(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  });
});

describe('refresh tokens', () => {
  it('rotate: each refresh token works once and yields a new pair', async () => {
    const first = await login(t, owner.email, owner.password, owner.orgSlug);
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/refresh',
      payload: { refresh_token: first.refresh_token },
    });
    expect(res.statusCode).toBe(200);
    const second = res.json<{ access_token: string; refresh_token: string; session_id: string }>();
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(second.session_id).toBe(first.session_id);
    expect((await session(bearer(second.access_token))).statusCode).toBe(200);
  });

  it('reuse of a rotated token revokes the whole session family', async () => {
    const first = await login(t, owner.email, owner.password, owner.orgSlug);
    const rotated = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/refresh',
      payload: { refresh_token: first.refresh_token },
    });
    const pair = rotated.json<{ access_token: string; refresh_token: string }>();

    const replay = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/refresh',
      payload: { refresh_token: first.refresh_token },
    });
    expect(replay.statusCode).toBe(401);
    expect(replay.json().code).toBe('refresh_token_reused');

    // The legitimate descendant is dead too, and so is every access token of the session.
    const next = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/refresh',
      payload: { refresh_token: pair.refresh_token },
    });
    expect(next.statusCode).toBe(401);
    expect((await session(bearer(pair.access_token))).statusCode).toBe(401);
    expect((await session(bearer(first.access_token))).statusCode).toBe(401);
  });

  it('refuses an unknown refresh token', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refresh_token: 'cairn_rt_nope' } });
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('invalid_refresh_token');
  });
});

describe('logout', () => {
  it('revokes the session: its access and refresh tokens stop working at once', async () => {
    const pair = await login(t, owner.email, owner.password, owner.orgSlug);
    expect((await session(bearer(pair.access_token))).statusCode).toBe(200);
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: bearer(pair.access_token) });
    expect(res.statusCode).toBe(204);
    expect((await session(bearer(pair.access_token))).statusCode).toBe(401);
    const refresh = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/refresh',
      payload: { refresh_token: pair.refresh_token },
    });
    expect(refresh.statusCode).toBe(401);
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'session.revoked', resourceId: pair.session_id });
  });
});

describe('access tokens that must be refused', () => {
  const claims = () => ({ org: owner.orgId, sid: 'x' });

  it('expired', async () => {
    const secret = t.deps.jwtSecret;
    const token = await new SignJWT(claims())
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(owner.userId)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt(Math.floor(Date.now() / 1000) - 3600)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(secret);
    const res = await session(bearer(token));
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('token_expired');
  });

  it('signed with another key', async () => {
    const token = await signAccessToken(
      new TextEncoder().encode('another-secret-another-secret-xx'),
      { sub: owner.userId, org: owner.orgId, sid: 'x' },
      60,
    );
    const res = await session(bearer(token));
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('invalid_token');
  });

  it('alg: none', async () => {
    const token = new UnsecuredJWT(claims())
      .setSubject(owner.userId)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .encode();
    expect((await session(bearer(token))).statusCode).toBe(401);
  });

  it('wrong issuer or audience', async () => {
    for (const [iss, aud] of [
      ['someone-else', AUDIENCE],
      [ISSUER, 'other-api'],
    ]) {
      const token = await new SignJWT(claims())
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(owner.userId)
        .setIssuer(iss!)
        .setAudience(aud!)
        .setExpirationTime('5m')
        .sign(t.deps.jwtSecret);
      expect((await session(bearer(token))).statusCode).toBe(401);
    }
  });

  it('a tampered payload', async () => {
    const [header, , signature] = owner.accessToken.split('.');
    const payload = Buffer.from(
      JSON.stringify({ sub: owner.userId, org: owner.orgId, sid: 'forged', iss: ISSUER, aud: AUDIENCE, exp: 9_999_999_999 }),
    ).toString('base64url');
    expect((await session(bearer(`${header}.${payload}.${signature}`))).statusCode).toBe(401);
  });

  it('a malformed Authorization header', async () => {
    for (const authorization of ['Basic abc', 'Bearer', 'Bearer a b', 'token']) {
      const res = await session({ authorization });
      expect(res.statusCode).toBe(401);
      expect(res.headers['content-type']).toMatch(/problem\+json/);
    }
  });

  it('no credentials at all', async () => {
    const res = await session({});
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('unauthorized');
  });
});

describe('API tokens', () => {
  it('are shown once, work as bearer tokens and carry only their scopes', async () => {
    const token = await createApiTokenFor(t, owner, ['projects:read']);
    expect(token.token).toMatch(/^cairn_pat_/);
    const desc = await session(token.headers);
    expect(desc.json()).toMatchObject({ kind: 'api_token', token_id: token.id, permissions: ['projects:read'] });

    expect((await t.app.inject({ method: 'GET', url: '/api/v1/projects', headers: token.headers })).statusCode).toBe(200);
    const write = await t.app.inject({ method: 'POST', url: '/api/v1/projects', headers: token.headers, payload: { name: 'x' } });
    expect(write.statusCode).toBe(403);
    expect(write.json().code).toBe('forbidden');

    const list = await t.app.inject({ method: 'GET', url: '/api/v1/tokens', headers: owner.headers });
    const listed = list.json<{ items: { id: string; last_used_at: string | null }[] }>().items.find((i) => i.id === token.id);
    expect(listed?.last_used_at).not.toBeNull();
    expect(list.body).not.toContain(token.token);
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'api_token.created', resourceId: token.id });
  });

  it('cannot be given scopes the creator lacks', async () => {
    const viewer = await addUser(t, owner, 'member');
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: viewer.headers,
      payload: { name: 'x', scopes: ['audit:read'] },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('scope_not_allowed');
  });

  it('stop working when revoked', async () => {
    const token = await createApiTokenFor(t, owner, ['projects:read']);
    expect((await session(token.headers)).statusCode).toBe(200);
    const res = await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${token.id}`, headers: owner.headers });
    expect(res.statusCode).toBe(204);
    expect((await session(token.headers)).statusCode).toBe(401);
  });

  it('stop working when expired', async () => {
    const token = await createApiTokenFor(t, owner, ['projects:read'], 1);
    await t.deps.db.query("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1", [token.id]);
    t.deps.authenticator.invalidate({ tokenId: token.id });
    const res = await session(token.headers);
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('credentials_expired');
  });

  it("lose what their owner's role loses", async () => {
    const admin = await addUser(t, owner, 'admin');
    const token = await createApiTokenFor(t, admin, ['audit:read', 'projects:read']);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/audit', headers: token.headers })).statusCode).toBe(200);
    await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/org/members/${admin.userId}`,
      headers: owner.headers,
      payload: { role: 'viewer' },
    });
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/audit', headers: token.headers })).statusCode).toBe(403);
  });

  it("of another organization's user cannot be revoked (404)", async () => {
    const other = await createOrgAndLogin(t);
    const token = await createApiTokenFor(t, owner, ['projects:read']);
    const res = await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${token.id}`, headers: other.headers });
    expect(res.statusCode).toBe(404);
    expect((await session(token.headers)).statusCode).toBe(200);
  });
});
