// The WebSocket stream end to end on a listening app: authentication before the upgrade,
// topic authorization like REST, routing of org events to client topics, revocation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Refused, TestSocket, listen, wsUrl } from '../../../test/events/helpers.js';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createApiTokenFor, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { signAccessToken } from '../auth/tokens.js';

let t: TestApp;
let base: string;
let alice: TestUser; // org A
let bob: TestUser; // org B
beforeAll(async () => {
  t = await buildTestApp({ CAIRN_EVENTS_CONNECTIONS_PER_USER: '3' });
  base = await listen(t);
  [alice, bob] = await Promise.all([createOrgAndLogin(t), createOrgAndLogin(t)]);
});
afterAll(() => t.close());

const bearer = (user: TestUser) => ({ headers: { authorization: `Bearer ${user.accessToken}` } });

async function createProject(user: TestUser, name: string): Promise<{ id: string }> {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/projects', headers: user.headers, payload: { name } });
  expect(res.statusCode).toBe(201);
  return res.json();
}

async function refusal(url: string, opts: Parameters<typeof TestSocket.open>[1] = {}): Promise<Refused> {
  const error = await TestSocket.open(url, opts).then(
    (s) => {
      s.close();
      throw new Error('the upgrade was accepted');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Refused);
  return error as Refused;
}

describe('authentication before the upgrade', () => {
  it('refuses no token, a bad token and an expired token with 401 problem+json', async () => {
    const none = await refusal(wsUrl(base));
    expect(none).toMatchObject({ status: 401, body: { status: 401, code: 'unauthorized' } });
    const bad = await refusal(wsUrl(base), { headers: { authorization: 'Bearer not.a.jwt' } });
    expect(bad).toMatchObject({ status: 401, body: { code: 'invalid_token' } });
    // The same session, the same secret: only the expiry differs.
    const { sid } = JSON.parse(Buffer.from(alice.accessToken.split('.')[1]!, 'base64url').toString()) as { sid: string };
    const expired = await signAccessToken(t.deps.jwtSecret, { sub: alice.userId, org: alice.orgId, sid }, -60);
    const old = await refusal(wsUrl(base), { headers: { authorization: `Bearer ${expired}` } });
    expect(old).toMatchObject({ status: 401, body: { code: 'token_expired' } });
    expect(typeof old.body.instance).toBe('string');
  });

  it('accepts the Authorization header, the bearer subprotocol and a single-use ticket', async () => {
    const byHeader = await TestSocket.open(wsUrl(base), bearer(alice));
    expect((await byHeader.next((m) => m.type === 'welcome')).data).toMatchObject({ org_id: alice.orgId, heartbeat_seconds: 30 });
    byHeader.close();

    const byProtocol = await TestSocket.open(wsUrl(base), { protocols: ['cairn.v1', `bearer.${alice.accessToken}`] });
    expect(byProtocol.ws.protocol).toBe('cairn.v1'); // the token itself is never echoed
    byProtocol.close();
    expect((await refusal(wsUrl(base), { protocols: [`bearer.${alice.accessToken}`] })).status).toBe(400);

    const issued = await t.app.inject({ method: 'POST', url: '/api/v1/ws/ticket', headers: alice.headers });
    expect(issued.statusCode).toBe(201);
    const { ticket } = issued.json<{ ticket: string }>();
    const byTicket = await TestSocket.open(wsUrl(base, `?ticket=${ticket}`));
    expect((await byTicket.next((m) => m.type === 'welcome')).data.org_id).toBe(alice.orgId);
    byTicket.close();
    expect(await refusal(wsUrl(base, `?ticket=${ticket}`))).toMatchObject({ status: 401, body: { code: 'invalid_ticket' } });
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/ws/ticket' })).statusCode).toBe(401);
  });

  it('refuses bad query parameters, other paths and too many streams per user', async () => {
    expect((await refusal(wsUrl(base, '?token=abc'), bearer(alice))).status).toBe(400);
    expect((await refusal(wsUrl(base, '?project_id=nope'), bearer(alice))).status).toBe(400);
    expect((await refusal(`${base.replace('http', 'ws')}/api/v1/elsewhere`, bearer(alice))).status).toBe(404);
    const carol = await createOrgAndLogin(t);
    const open = await Promise.all([1, 2, 3].map(() => TestSocket.open(wsUrl(base), bearer(carol))));
    expect(await refusal(wsUrl(base), bearer(carol))).toMatchObject({ status: 429, body: { code: 'too_many_streams' } });
    open[0]!.close();
    await open[0]!.closed;
    // The server counts the stream out when it sees the close, a moment after the client does.
    await expect
      .poll(() =>
        TestSocket.open(wsUrl(base), bearer(carol)).then(
          (s) => (s.close(), true),
          () => false,
        ),
      )
      .toBe(true);
    open.slice(1).forEach((s) => s.close());
  });

  it('describes the protocol on a plain GET', async () => {
    const res = await t.app.inject({ url: '/api/v1/ws', headers: alice.headers });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ subprotocol: 'cairn.v1', close_codes: { slowConsumer: 4008 } });
    expect(res.json().topics).toEqual(expect.arrayContaining(['org', 'project:<id>', 'ledger']));
  });
});

describe('topics', () => {
  it('refuses another organization’s topic exactly like a missing one, and unknown or internal topics', async () => {
    const project = await createProject(alice, 'Secret plans');
    const socket = await TestSocket.open(wsUrl(base), bearer(bob));
    const foreign = await socket.subscribe(`project:${project.id}`);
    const missing = await socket.subscribe('project:00000000-0000-4000-8000-000000000000');
    expect(foreign).toMatchObject({ type: 'error', data: { code: 'topic_not_found' } });
    expect(missing.data.code).toBe(foreign.data.code);
    expect(String(foreign.data.message).replace(project.id, 'X')).toBe(
      String(missing.data.message).replace('00000000-0000-4000-8000-000000000000', 'X'),
    );
    for (const internal of ['auth', `org:${alice.orgId}`, 'queue:x', 'project:not-a-uuid', 'nope']) {
      expect((await socket.subscribe(internal)).data.code, internal).toBe('unknown_topic');
    }
    socket.close();
  });

  it('needs the REST read permission: a token without projects:read is refused project topics and project events', async () => {
    const token = await createApiTokenFor(t, alice, ['tokens:write']);
    const project = await createProject(alice, 'Scoped');
    const socket = await TestSocket.open(wsUrl(base), { headers: token.headers });
    expect((await socket.subscribe(`project:${project.id}`)).data.code).toBe('forbidden');
    expect((await socket.subscribe('org')).type).toBe('subscribed');
    const reader = await TestSocket.open(wsUrl(base), bearer(alice));
    await reader.subscribe('org');
    await createProject(alice, 'Invisible to the token');
    await reader.next((m) => m.type === 'project.created' && m.data.project_id !== project.id);
    socket.send({ type: 'ping' });
    await socket.next((m) => m.type === 'pong');
    expect(socket.events()).toEqual([]);
    socket.close();
    reader.close();
  });

  it('routes each org event to the org feed and to the project’s topic, never to another organization', async () => {
    const project = await createProject(alice, 'Routed');
    const socket = await TestSocket.open(wsUrl(base, `?topics=org,project:${project.id}`), bearer(alice));
    await socket.next((m) => m.type === 'subscribed' && m.topic === 'org');
    await socket.next((m) => m.type === 'subscribed' && m.topic === `project:${project.id}`);
    await createProject(bob, 'Other org');
    const other = await createProject(alice, 'Sibling');
    const patched = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/projects/${project.id}`,
      headers: alice.headers,
      payload: { description: 'live' },
    });
    expect(patched.statusCode).toBe(200);
    const onProject = await socket.next((m) => m.type === 'project.updated' && m.topic === `project:${project.id}`);
    const onOrg = await socket.next((m) => m.type === 'project.updated' && m.topic === 'org');
    expect(onProject.id).toBe(onOrg.id);
    expect(onProject.data).toMatchObject({ org_id: alice.orgId, project_id: project.id, project: { description: 'live' } });
    const seen = socket.events().map((m) => `${m.topic} ${m.type} ${String(m.data.project_id)}`);
    expect(seen.sort()).toEqual([
      `org project.created ${other.id}`,
      `org project.updated ${project.id}`,
      `project:${project.id} project.updated ${project.id}`,
    ]);
    socket.close();
  });
});

describe('credentials revoked while connected', () => {
  it('closes the stream with 4001 on logout', async () => {
    const user = await createOrgAndLogin(t);
    const socket = await TestSocket.open(wsUrl(base), bearer(user));
    await socket.next((m) => m.type === 'welcome');
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: user.headers });
    expect(res.statusCode).toBeLessThan(300);
    expect((await socket.closed).code).toBe(4001);
  });
});
