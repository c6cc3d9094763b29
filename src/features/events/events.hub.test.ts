// The hub without a transport: topic kinds the coming features will register (jobs, runs,
// agents, approvals), per-event permissions, and gap-free delivery across bus interruptions.
import type { FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../../../test/events/helpers.js';
import { ROLE_PERMISSIONS, systemContext, type AuthContext, type Permission, type Role } from '../../platform/auth.js';
import { createMemoryBus, publishOrgEvent, type Bus, type BusHandler } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';
import type { Payload, StreamClient, Subscription } from './events.delivery.js';
import { EventHub } from './events.hub.js';
import { ORG_TOPIC, agentsTopicKind, approvalsTopicKind, jobTopicKinds, runTopicKind } from './events.kinds.js';
import { TopicRegistry } from './events.topics.js';

const ORG = '11111111-1111-4111-8111-111111111111';
const JOB = '22222222-2222-4222-8222-222222222222';
const OTHER_JOB = '33333333-3333-4333-8333-333333333333';
const RUN = '44444444-4444-4444-8444-444444444444';
const known = new Set([JOB, OTHER_JOB, RUN]);
const exists = async (_db: Queryable, orgId: string, id: string) => orgId === ORG && known.has(id);

class FakeClient implements StreamClient {
  readonly transport = 'websocket' as const;
  readonly subscriptions = new Map<string, Subscription>();
  readonly messages: Message[] = [];
  open = true;
  constructor(readonly auth: AuthContext) {}
  sendEvent(payload: Payload): void {
    this.messages.push(JSON.parse(payload.json) as Message);
  }
  sendControl(message: string): void {
    this.messages.push(JSON.parse(message) as Message);
  }
  closedWith: number | null = null;
  close(code: number): void {
    this.open = false;
    this.closedWith = code;
  }
  heartbeat(): void {}
  bufferedBytes(): number {
    return 0;
  }
  seen(): string[] {
    return this.messages.filter((m) => m.type.includes('.')).map((m) => `${m.topic} ${m.type}`);
  }
}

function user(role: Role, permissions?: Permission[]): AuthContext {
  const auth = systemContext(ORG);
  return {
    ...auth,
    role,
    userId: `user-${role}`,
    permissions: permissions ? new Set(permissions) : ROLE_PERMISSIONS[role],
    actor: { type: 'user', id: `user-${role}`, label: role },
  };
}

/** A memory bus whose Redis-style notices a test can send. */
function interruptibleBus(): Bus & { notify(type: 'bus.interrupted' | 'bus.resumed'): void } {
  const bus = createMemoryBus();
  const noticed: { topic: string; handler: BusHandler }[] = [];
  return {
    ...bus,
    subscribe(topic, handler, options) {
      const off = bus.subscribe(topic, handler, options);
      if (!options?.notices) return off;
      const entry = { topic, handler };
      noticed.push(entry);
      return () => {
        off();
        noticed.splice(noticed.indexOf(entry), 1);
      };
    },
    notify(type) {
      for (const { topic, handler } of noticed) handler({ topic, type, data: {}, at: new Date().toISOString() });
    },
  };
}

let hubs: EventHub[] = [];
afterEach(() => {
  hubs.forEach((h) => h.close());
  hubs = [];
});

function setup(bus: Bus = createMemoryBus()) {
  const registry = new TopicRegistry();
  registry.register(
    ORG_TOPIC,
    ...jobTopicKinds({ permission: 'jobs:read', exists }),
    runTopicKind({ permission: 'jobs:read', exists }),
    agentsTopicKind({ permission: 'agents:read' }),
    approvalsTopicKind({ permission: 'projects:read' }),
  );
  const log = pino({ level: 'silent' }) as FastifyBaseLogger;
  const hub = new EventHub({ db: {} as Queryable, bus, log }, registry, { maxTopics: 10, heartbeatMs: 60_000 });
  hubs.push(hub);
  return { hub, bus, registry };
}

describe('routing of the coming features’ events', () => {
  it('sends log chunks only to the job’s log topic, and the job’s transitions to its topics and the org feed', async () => {
    const { hub, bus } = setup();
    const client = new FakeClient(user('viewer'));
    await hub.subscribeAll(client, ['org', `job:${JOB}`, `job:${JOB}:log`, `run:${RUN}`]);
    publishOrgEvent(bus, ORG, 'job.log', { job_id: JOB, attempt: 1, offset: 0, data: 'hello\n' });
    publishOrgEvent(bus, ORG, 'job.log', { job_id: OTHER_JOB, attempt: 1, offset: 0, data: 'not mine\n' });
    publishOrgEvent(bus, ORG, 'job.started', { job_id: JOB, run_id: RUN });
    publishOrgEvent(bus, ORG, 'job.completed', { job_id: JOB, run_id: RUN });
    publishOrgEvent(bus, ORG, 'run.finished', { run_id: RUN, state: 'passed' });
    expect(client.seen()).toEqual([
      `job:${JOB}:log job.log`,
      `org job.started`,
      `job:${JOB} job.started`,
      `run:${RUN} job.started`,
      `org job.completed`,
      `job:${JOB} job.completed`,
      `job:${JOB}:log job.completed`,
      `run:${RUN} job.completed`,
      `org run.finished`,
      `run:${RUN} run.finished`,
    ]);
    const log = client.messages.find((m) => m.type === 'job.log')!;
    expect(log).toMatchObject({ id: null, data: { offset: 0, data: 'hello\n' } });
  });

  it('refuses missing ids and a log topic resume by id, which answers resync', async () => {
    const { hub } = setup();
    const client = new FakeClient(user('viewer'));
    await hub.subscribe(client, 'job:55555555-5555-4555-8555-555555555555');
    expect(client.messages.at(-1)).toMatchObject({ type: 'error', data: { code: 'topic_not_found' } });
    await hub.subscribe(client, `job:${JOB}:log`, '1-0');
    expect(client.messages.slice(-2).map((m) => [m.type, m.data.reason])).toEqual([
      ['subscribed', undefined],
      ['resync', 'not_resumable'],
    ]);
  });

  it('shows approvals on `approvals` only to those who may answer, by role or user id', async () => {
    const { hub, bus } = setup();
    const admin = new FakeClient(user('admin'));
    const viewer = new FakeClient(user('viewer'));
    for (const c of [admin, viewer]) await hub.subscribeAll(c, ['approvals', 'org']);
    publishOrgEvent(bus, ORG, 'approval.requested', {
      approval_id: 'a1',
      allowed_roles: ['admin', 'owner'],
      allowed_user_ids: [],
    });
    publishOrgEvent(bus, ORG, 'approval.requested', { approval_id: 'a2', allowed_roles: [], allowed_user_ids: ['user-viewer'] });
    const approvals = (c: FakeClient) =>
      c.messages.filter((m) => m.topic === 'approvals' && m.type.includes('.')).map((m) => m.data.approval_id);
    expect(approvals(admin)).toEqual(['a1']);
    expect(approvals(viewer)).toEqual(['a2']);
    // The org feed shows every approval to whoever may read approvals at all.
    expect(viewer.seen().filter((s) => s.startsWith('org '))).toHaveLength(2);
  });

  it('needs each event family’s read permission, and drops event types no feature claims', async () => {
    const { hub, bus, registry } = setup();
    const jobsOnly = new FakeClient(user('viewer', ['jobs:read']));
    const full = new FakeClient(user('admin'));
    for (const c of [jobsOnly, full]) await hub.subscribe(c, 'org');
    publishOrgEvent(bus, ORG, 'agent.status_changed', { agent_id: 'x', status: 'busy' });
    publishOrgEvent(bus, ORG, 'deployment.started', { deployment_id: 'd' });
    publishOrgEvent(bus, ORG, 'job.queued', { job_id: JOB });
    expect(jobsOnly.seen()).toEqual(['org job.queued']);
    expect(full.seen()).toEqual(['org agent.status_changed', 'org job.queued']);
    registry.registerEventTypes(['deployment.'], 'jobs:read');
    publishOrgEvent(bus, ORG, 'deployment.started', { deployment_id: 'd' });
    expect(jobsOnly.seen().at(-1)).toBe('org deployment.started');
    await hub.subscribe(jobsOnly, 'agents');
    expect(jobsOnly.messages.at(-1)).toMatchObject({ type: 'error', data: { code: 'forbidden' } });
  });
});

describe('delivery across bus interruptions', () => {
  it('holds events while interrupted, reads back what it missed, and sends each once in order', async () => {
    const bus = interruptibleBus();
    const { hub } = setup(bus);
    const client = new FakeClient(user('admin'));
    await hub.subscribe(client, `job:${JOB}`);
    publishOrgEvent(bus, ORG, 'job.queued', { job_id: JOB, n: 1 });
    bus.notify('bus.interrupted');
    publishOrgEvent(bus, ORG, 'job.claimed', { job_id: JOB, n: 2 });
    publishOrgEvent(bus, ORG, 'job.started', { job_id: JOB, n: 3 });
    expect(client.seen()).toEqual([`job:${JOB} job.queued`]); // held until the history is read back
    bus.notify('bus.resumed');
    await expect.poll(() => client.seen().length).toBe(3);
    publishOrgEvent(bus, ORG, 'job.completed', { job_id: JOB, n: 4 });
    expect(client.messages.filter((m) => m.data.n !== undefined).map((m) => m.data.n)).toEqual([1, 2, 3, 4]);
  });

  it('tells subscribers to resync when the history cannot say what was missed', async () => {
    const bus = interruptibleBus();
    const { hub } = setup({ ...bus, history: async () => null });
    const client = new FakeClient(user('admin'));
    await hub.subscribe(client, `job:${JOB}`);
    bus.notify('bus.interrupted');
    bus.notify('bus.resumed');
    await expect
      .poll(() => client.messages.at(-1))
      .toMatchObject({ type: 'resync', topic: `job:${JOB}`, data: { reason: 'gap' } });
  });
});

describe('revocation', () => {
  it('closes the streams whose session, token, user or agent was revoked, with 4001', () => {
    const { hub, bus } = setup();
    const session = new FakeClient({ ...user('member'), sessionId: 's1' });
    const agent = new FakeClient({ ...user('member'), userId: null, agentId: 'a1', poolId: 'p1' });
    const other = new FakeClient({ ...user('admin'), sessionId: 's2' });
    for (const c of [session, agent, other]) hub.attach(c);
    bus.publish('auth', 'pool.token_rotated', { poolId: 'p1' }); // agents keep their own tokens
    expect(agent.closedWith).toBeNull();
    bus.publish('auth', 'session.revoked', { sessionId: 's1' });
    bus.publish('auth', 'pool.deleted', { poolId: 'p1' });
    expect([session.closedWith, agent.closedWith, other.closedWith]).toEqual([4001, 4001, null]);
  });
});
