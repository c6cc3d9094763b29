import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { addUser, createApiTokenFor, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { claim, createPool, enqueue, registerAgent, report } from '../../../test/helpers/queue.js';
import { expectHiddenFromOtherOrgs, expectNotListed } from '../../../test/helpers/tenancy.js';
import { expireDueApprovals } from './approvals.service.js';
import type { ApprovalView } from './approvals.views.js';

let t: TestApp;
let owner: TestUser;
let admin: TestUser;
let member: TestUser;
let otherMember: TestUser;
let viewer: TestUser;
let stranger: TestUser; // another organization
let projectId: string;

beforeAll(async () => {
  t = await buildTestApp();
  [owner, stranger] = await Promise.all([createOrgAndLogin(t), createOrgAndLogin(t)]);
  [admin, member, otherMember, viewer] = await Promise.all([
    addUser(t, owner, 'admin'),
    addUser(t, owner, 'member'),
    addUser(t, owner, 'member'),
    addUser(t, owner, 'viewer'),
  ]);
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/projects', headers: owner.headers, payload: { name: 'Gates' } });
  projectId = res.json<{ id: string }>().id;
});
afterAll(() => t.close());

const FIELDS = [
  { key: 'reason', type: 'text', required: true },
  { key: 'channel', type: 'select', options: ['stable', 'beta'], default: 'stable' },
  { key: 'notify', type: 'boolean' },
];

async function ask(as: TestUser | { headers: Record<string, string> }, payload: Record<string, unknown> = {}) {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/approvals',
    headers: as.headers,
    payload: { question: 'Ship it?', project_id: projectId, ...payload },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<ApprovalView>();
}

const respond = (as: TestUser, id: string, payload: Record<string, unknown>) =>
  t.app.inject({ method: 'POST', url: `/api/v1/approvals/${id}/respond`, headers: as.headers, payload });

const get = async (as: TestUser, id: string) => {
  const res = await t.app.inject({ method: 'GET', url: `/api/v1/approvals/${id}`, headers: as.headers });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<ApprovalView>();
};

const list = async (as: TestUser, query: string) => {
  const res = await t.app.inject({ method: 'GET', url: `/api/v1/approvals?${query}`, headers: as.headers });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<{ items: ApprovalView[]; next_cursor: string | null }>();
};

describe('asking and answering', () => {
  it('an answer is checked against the fields, recorded, audited, and cannot be given twice', async () => {
    const a = await ask(member, { fields: FIELDS, allowed_roles: ['admin'] });
    expect(a).toMatchObject({
      state: 'pending',
      allowed_roles: ['owner', 'admin'],
      subject: { type: 'none' },
      requested_by: { type: 'user', label: member.email },
      can_respond: false,
    });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'approval.requested', resourceId: a.id, actorId: member.userId });
    expect((await get(admin, a.id)).can_respond).toBe(true);

    const missing = await respond(admin, a.id, { decision: 'approve', input: { channel: 'beta' } });
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toMatchObject({
      code: 'validation_failed',
      errors: [{ field: 'input.reason', message: 'is required' }],
    });
    expect(missing.json().detail).toContain('input.reason');

    const badOption = await respond(admin, a.id, { decision: 'approve', input: { reason: 'ok', channel: 'nightly' } });
    expect(badOption.statusCode).toBe(400);
    expect(badOption.json().errors).toEqual([{ field: 'input.channel', message: 'must be one of: stable, beta' }]);

    const unknownField = await respond(admin, a.id, { decision: 'approve', input: { reason: 'ok', colour: 'red' } });
    expect(unknownField.json().errors).toEqual([{ field: 'input.colour', message: 'is not a field of this approval' }]);
    const wrongType = await respond(admin, a.id, { decision: 'approve', input: { reason: 'ok', notify: 'yes' } });
    expect(wrongType.json().errors).toEqual([{ field: 'input.notify', message: 'must be true or false' }]);

    const ok = await respond(admin, a.id, { decision: 'approve', input: { reason: 'tested', notify: true }, comment: 'go' });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toMatchObject({
      state: 'approved',
      response: { by: { id: admin.userId }, input: { reason: 'tested', channel: 'stable', notify: true }, comment: 'go' },
    });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'approval.responded', resourceId: a.id, actorId: admin.userId });

    const again = await respond(owner, a.id, { decision: 'reject' });
    expect(again.statusCode).toBe(409);
    expect(again.json().code).toBe('approval_resolved');
  });

  it('a rejection needs no required input; choices must be among the options', async () => {
    const a = await ask(owner, { fields: FIELDS, options: ['blue', 'green'] });
    expect((await respond(member, a.id, { decision: 'approve', input: { reason: 'x' } })).json().code).toBe('choice_required');
    expect((await respond(member, a.id, { decision: 'approve', choice: 'red', input: { reason: 'x' } })).json().code).toBe(
      'invalid_choice',
    );
    const rejected = await respond(member, a.id, { decision: 'reject', comment: 'not today' });
    expect(rejected.statusCode, rejected.body).toBe(200);
    expect(rejected.json()).toMatchObject({ state: 'rejected', response: { comment: 'not today', choice: null } });

    const b = await ask(owner, { options: ['blue', 'green'] });
    expect((await respond(member, b.id, { decision: 'approve', choice: 'green' })).json()).toMatchObject({
      state: 'approved',
      response: { choice: 'green' },
    });
  });

  it('only the people and roles it names may answer; a viewer never can', async () => {
    const a = await ask(owner, { allowed_users: [otherMember.email.toUpperCase()] });
    expect(a).toMatchObject({ allowed_roles: [], allowed_user_ids: [otherMember.userId] });
    const notNamed = await respond(member, a.id, { decision: 'approve' });
    expect(notNamed.statusCode).toBe(403);
    expect(notNamed.json().code).toBe('not_an_approver');
    expect((await respond(owner, a.id, { decision: 'approve' })).statusCode).toBe(403);

    const anyone = await ask(owner);
    expect(anyone.allowed_roles).toEqual(['owner', 'admin', 'member']);
    const byViewer = await respond(viewer, anyone.id, { decision: 'approve' });
    expect(byViewer.statusCode).toBe(403);
    // Even named, a viewer lacks the permission to answer.
    const named = await ask(owner, { allowed_users: [viewer.userId] });
    expect((await respond(viewer, named.id, { decision: 'approve' })).statusCode).toBe(403);

    expect((await respond(otherMember, a.id, { decision: 'approve' })).statusCode).toBe(200);
    const unknown = await t.app.inject({
      method: 'POST',
      url: '/api/v1/approvals',
      headers: owner.headers,
      payload: { question: 'q', allowed_users: ['nobody@example.test'] },
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json()).toMatchObject({ code: 'unknown_approvers', unknown: ['nobody@example.test'] });
  });

  it('lists by project and state, and what waits for me', async () => {
    const forAdmins = await ask(owner, { allowed_roles: ['admin'] });
    const forOther = await ask(owner, { allowed_users: [otherMember.userId] });
    const mine = (await list(admin, 'waiting_for_me=true')).items.map((a) => a.id);
    expect(mine).toContain(forAdmins.id);
    expect(mine).not.toContain(forOther.id);
    const others = (await list(otherMember, 'waiting_for_me=true')).items.map((a) => a.id);
    expect(others).toContain(forOther.id);
    expect(others).not.toContain(forAdmins.id);
    expect((await list(viewer, 'waiting_for_me=true')).items).toEqual([]);

    const pending = await list(viewer, `project_id=${projectId}&state=pending&limit=1`);
    expect(pending.items).toHaveLength(1);
    expect(pending.next_cursor).not.toBeNull();
    const next = await list(viewer, `project_id=${projectId}&state=pending&limit=1&cursor=${pending.next_cursor}`);
    expect(next.items[0]!.id).not.toBe(pending.items[0]!.id);
    expect((await list(viewer, 'state=approved')).items.every((a) => a.state === 'approved')).toBe(true);

    const byProject = await t.app.inject({
      method: 'GET',
      url: `/api/v1/projects/${projectId}/approvals`,
      headers: viewer.headers,
    });
    expect(byProject.json().items.map((a: ApprovalView) => a.id)).toContain(forAdmins.id);

    const status = await t.app.inject({ method: 'GET', url: `/api/v1/projects/${projectId}/status`, headers: viewer.headers });
    const open = (await list(viewer, `project_id=${projectId}&state=pending&limit=200`)).items.length;
    expect(status.json().counts.open_approvals).toBe(open);
    expect(open).toBeGreaterThanOrEqual(2);
  });
});

describe('expiry and withdrawal', () => {
  it('expires when due (no answer after that), audited; the expiry pass is idempotent', async () => {
    const a = await ask(owner, { expires_in_seconds: 3600, on_expiry: 'continue' });
    await t.deps.db.query("UPDATE approvals SET expires_at = now() - interval '1 second' WHERE id = $1", [a.id]);
    const late = await respond(member, a.id, { decision: 'approve' });
    expect(late.statusCode).toBe(409);
    expect(late.json().code).toBe('approval_expired');
    expect(await expireDueApprovals(t.deps)).toBeGreaterThanOrEqual(1);
    expect(await get(owner, a.id)).toMatchObject({ state: 'expired', on_expiry: 'continue', response: null });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'approval.expired', resourceId: a.id });
    expect(await expireDueApprovals(t.deps)).toBe(0);
  });

  it('the asker may cancel a pending approval; an answer after that is refused', async () => {
    const a = await ask(member);
    const res = await t.app.inject({
      method: 'POST',
      url: `/api/v1/approvals/${a.id}/cancel`,
      headers: member.headers,
      payload: { reason: 'no longer needed' },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ state: 'canceled', resolved_by: { id: member.userId } });
    expect((await respond(owner, a.id, { decision: 'approve' })).json().code).toBe('approval_resolved');
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'approval.canceled', resourceId: a.id });
    const byViewer = await t.app.inject({
      method: 'POST',
      url: `/api/v1/approvals/${a.id}/cancel`,
      headers: viewer.headers,
      payload: {},
    });
    expect(byViewer.statusCode).toBe(403);
    // The body is optional.
    const b = await ask(member);
    const bare = await t.app.inject({ method: 'POST', url: `/api/v1/approvals/${b.id}/cancel`, headers: member.headers });
    expect(bare.statusCode, bare.body).toBe(200);
  });
});

describe('who may ask', () => {
  it("a job's shell asks with its job token, for its project; it reads and cancels only its own", async () => {
    const pool = await createPool(t, owner, 'bots');
    const agent = await registerAgent(t, pool);
    const job = await enqueue(t, owner, { pool: 'bots', project_id: projectId });
    const [claimed] = await claim(t, agent);
    const jobAuth = { headers: { authorization: `Bearer ${claimed!.job_token as string}` } };
    const a = await ask(jobAuth, { project_id: undefined, question: 'May I delete the cache?' });
    expect(a).toMatchObject({ project_id: projectId, subject: { type: 'job', job_id: job.id }, requested_by: { type: 'agent' } });
    const read = await t.app.inject({ method: 'GET', url: `/api/v1/approvals/${a.id}`, headers: jobAuth.headers });
    expect(read.statusCode).toBe(200);
    const someoneElses = await ask(owner);
    const peek = await t.app.inject({ method: 'GET', url: `/api/v1/approvals/${someoneElses.id}`, headers: jobAuth.headers });
    expect(peek.statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/approvals', headers: jobAuth.headers })).statusCode).toBe(403);
    const answer = await t.app.inject({
      method: 'POST',
      url: `/api/v1/approvals/${a.id}/respond`,
      headers: jobAuth.headers,
      payload: { decision: 'approve' },
    });
    expect(answer.statusCode).toBe(403); // a bot asks; people answer
    await report(t, agent, claimed!, 'complete');
  });

  it('a viewer, or a token without jobs:write, cannot ask', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/approvals',
      headers: viewer.headers,
      payload: { question: 'q' },
    });
    expect(res.statusCode).toBe(403);
    const token = await createApiTokenFor(t, member, ['jobs:read']);
    const byToken = await t.app.inject({
      method: 'POST',
      url: '/api/v1/approvals',
      headers: token.headers,
      payload: { question: 'q' },
    });
    expect(byToken.statusCode).toBe(403);
    const respondToken = await createApiTokenFor(t, member, ['jobs:read', 'approvals:respond']);
    const a = await ask(owner);
    const answered = await t.app.inject({
      method: 'POST',
      url: `/api/v1/approvals/${a.id}/respond`,
      headers: respondToken.headers,
      payload: { decision: 'approve' },
    });
    expect(answered.statusCode, answered.body).toBe(200);
    expect(answered.json().response.by).toMatchObject({ type: 'api_token' });
  });

  it('bad input is a 400 naming what is wrong', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ question: '' }, 'validation_failed'],
      [{ question: 'q', fields: [{ key: 'a', type: 'select' }] }, 'invalid_field'],
      [
        {
          question: 'q',
          fields: [
            { key: 'a', type: 'text' },
            { key: 'a', type: 'boolean' },
          ],
        },
        'duplicate_field',
      ],
      [{ question: 'q', fields: [{ key: 'a', type: 'boolean', default: 'yes' }] }, 'invalid_field'],
      [{ question: 'q', allowed_roles: ['god'] }, 'validation_failed'],
      [{ question: 'q', project_id: '6f1c1e6e-8d1b-4a55-9c3a-2f0e1d7b5a10' }, 'unknown_project'],
      [{ question: 'q', expires_in_seconds: 0 }, 'validation_failed'],
    ];
    for (const [payload, code] of cases) {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/approvals', headers: owner.headers, payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().code, JSON.stringify(payload)).toBe(code);
    }
    const a = await ask(owner);
    expect((await respond(owner, a.id, { decision: 'maybe' })).statusCode).toBe(400);
  });
});

describe('tenancy', () => {
  it("another organization's approval is a 404 on every route and never listed", async () => {
    const a = await ask(owner, { fields: FIELDS });
    const checked = await expectHiddenFromOtherOrgs(t, {
      pathPrefix: '/api/v1/approvals/{id}',
      params: { id: a.id },
      as: stranger,
      bodies: {
        'POST /api/v1/approvals/{id}/respond': { decision: 'approve', input: { reason: 'pwned' } },
        'POST /api/v1/approvals/{id}/cancel': {},
      },
    });
    expect(checked).toBe(3);
    await expectNotListed(t, '/api/v1/approvals', stranger, a.id);
    await expectNotListed(t, '/api/v1/approvals?waiting_for_me=true', stranger, a.id);
    const asked = await t.app.inject({
      method: 'POST',
      url: '/api/v1/approvals',
      headers: stranger.headers,
      payload: { question: 'q', project_id: projectId },
    });
    expect(asked.statusCode).toBe(400);
    expect((await get(owner, a.id)).state).toBe('pending');
  });
});
