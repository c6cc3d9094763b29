// The SSE fallback: same authentication and topic checks (as HTTP statuses before the
// stream starts), the same envelopes, and resume through Last-Event-ID.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, openSse } from '../../../test/events/helpers.js';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import { parseCursor } from './events.sse.js';

let t: TestApp;
let base: string;
let alice: TestUser;
let bob: TestUser;
let projectId: string;
beforeAll(async () => {
  t = await buildTestApp();
  base = await listen(t);
  [alice, bob] = await Promise.all([createOrgAndLogin(t), createOrgAndLogin(t)]);
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/projects', headers: alice.headers, payload: { name: 'SSE' } });
  projectId = res.json<{ id: string }>().id;
});
afterAll(() => t.close());

const url = (topics: string, extra = '') => `${base}/api/v1/events?topics=${encodeURIComponent(topics)}${extra}`;
const publish = (n: number) => publishOrgEvent(t.deps.bus, alice.orgId, 'project.updated', { project_id: projectId, n });

describe('SSE', () => {
  it('refuses without credentials, and refuses bad topics with the REST statuses', async () => {
    const anonymous = await openSse(url('org'));
    expect(anonymous.status).toBe(401);
    await expect.poll(() => anonymous.body()).toContain('"code":"unauthorized"');
    expect((await openSse(url(`project:${projectId}`), bob.headers)).status).toBe(404);
    expect((await openSse(url('project:00000000-0000-4000-8000-000000000000'), bob.headers)).status).toBe(404);
    expect((await openSse(url('auth'), alice.headers)).status).toBe(400);
    const bad = await t.app.inject({ url: '/api/v1/events?topics=org&surprise=1', headers: alice.headers });
    expect(bad.statusCode).toBe(400);
  });

  it('streams envelopes with a resumable cursor, and resumes through Last-Event-ID without gap or duplicate', async () => {
    const first = await openSse(url(`org,project:${projectId}`), alice.headers);
    expect(first.status).toBe(200);
    await first.next((e) => e.message.type === 'subscribed' && e.message.topic === `project:${projectId}`);
    publish(1);
    publish(2);
    const second = await first.next((e) => e.message.data.n === 2 && e.message.topic === `project:${projectId}`);
    expect(parseCursor(second.id).org).toBe(second.message.id);
    first.close();
    publish(3);
    publish(4);

    const again = await openSse(url(`org,project:${projectId}`), { ...alice.headers, 'last-event-id': second.id! });
    await again.next((e) => e.message.data.n === 4 && e.message.topic === `project:${projectId}`);
    publish(5);
    await again.next((e) => e.message.data.n === 5 && e.message.topic === `project:${projectId}`);
    const numbers = again.events.filter((e) => e.message.topic === `project:${projectId}` && e.message.type.includes('.'));
    expect(numbers.map((e) => e.message.data.n)).toEqual([3, 4, 5]);
    const onOrg = again.events.filter((e) => e.message.topic === 'org' && e.message.type.includes('.'));
    expect(onOrg.map((e) => e.message.data.n)).toEqual([3, 4, 5]);
    again.close();
  });

  it('accepts a single-use ticket instead of a header', async () => {
    const { ticket } = (await t.app.inject({ method: 'POST', url: '/api/v1/ws/ticket', headers: alice.headers })).json<{
      ticket: string;
    }>();
    const stream = await openSse(url('ledger', `&ticket=${ticket}`));
    expect(stream.status).toBe(200);
    await stream.next((e) => e.message.type === 'subscribed' && e.message.topic === 'ledger');
    stream.close();
    expect((await openSse(url('ledger', `&ticket=${ticket}`))).status).toBe(401);
  });
});
