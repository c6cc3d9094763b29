import { describe, expect, it } from 'vitest';
import { ROLE_PERMISSIONS, systemContext } from '../../platform/auth.js';
import type { BusEvent } from '../../platform/bus.js';
import { ORG_TOPIC, PROJECT_TOPIC, jobTopicKinds, mayAnswer } from './events.kinds.js';
import { parseClientMessage } from './events.protocol.js';
import { TopicRegistry } from './events.topics.js';

const ID = '6f1c1e6e-8d1b-4a55-9c3a-2f0e1d7b5a10';
const event = (type: string, data: Record<string, unknown>): BusEvent => ({ topic: 'org:o', type, data, at: '' });

describe('topic registry', () => {
  const registry = new TopicRegistry();
  const exists = async () => true;
  registry.register(ORG_TOPIC, PROJECT_TOPIC, ...jobTopicKinds({ permission: 'jobs:read', exists }));

  it('parses topic names into kinds and ids, refusing malformed ones', () => {
    expect(registry.parse('org')?.kind).toBe(ORG_TOPIC);
    expect(registry.parse(`project:${ID.toUpperCase()}`)).toEqual({ kind: PROJECT_TOPIC, id: ID });
    expect(registry.parse(`job:${ID}:log`)?.kind.suffix).toBe('log');
    for (const bad of ['org:x', 'project', 'project:1', `project:${ID}:log`, `job:${ID}:nope`, 'a:b:c:d', '', 'ledger']) {
      expect(registry.parse(bad), bad).toBeNull();
    }
  });

  it('routes an event by the ids in its data, keeping live-only types out of broad topics', () => {
    expect(registry.routes(event('project.updated', { project_id: ID }))).toEqual(['org', `project:${ID}`]);
    expect(registry.routes(event('job.completed', { job_id: ID, project_id: ID }))).toEqual([
      'org',
      `project:${ID}`,
      `job:${ID}`,
      `job:${ID}:log`,
    ]);
    expect(registry.routes(event('job.log', { job_id: ID, project_id: ID }))).toEqual([`job:${ID}:log`]);
    expect(registry.routes(event('job.started', { job_id: 42 }))).toEqual(['org']);
  });

  it('maps event types to the permission of the kind that owns them, failing closed', () => {
    expect(registry.permissionFor('project.created')).toBe('projects:read');
    expect(registry.permissionFor('job.log')).toBe('jobs:read');
    expect(registry.permissionFor('deployment.started')).toBeNull();
  });

  it('allows registering the same kind twice, but not a different kind under a taken name', () => {
    expect(() => registry.register(PROJECT_TOPIC)).not.toThrow();
    expect(() => registry.register({ name: 'project', permission: 'projects:read', exists })).toThrow(/already registered/);
    expect(() => registry.register({ name: 'ledger', permission: 'authenticated' })).toThrow(/not a usable/);
    expect(() => registry.register({ name: 'x', suffix: 'log', permission: 'authenticated' })).toThrow(/needs an id/);
  });
});

describe('approvals "waiting for me"', () => {
  const auth = { ...systemContext('o'), role: 'member' as const, userId: 'u1', permissions: ROLE_PERMISSIONS.member };
  it.each([
    [{ allowed_roles: ['member'] }, true],
    [{ allowed_roles: ['admin'], allowed_user_ids: ['u1'] }, true],
    [{ allowed_roles: ['admin'], allowed_user_ids: ['u2'] }, false],
    [{}, false],
    [{ allowed_roles: 'member' }, false],
  ])('%j → %s', (data, expected) => {
    expect(mayAnswer(event('approval.requested', data), auth)).toBe(expected);
  });
});

describe('client messages', () => {
  it.each([
    ['{"type":"subscribe","topic":"org"}', { type: 'subscribe', topic: 'org' }],
    ['{"type":"subscribe","topic":"org","since":"1-0"}', { type: 'subscribe', topic: 'org', since: '1-0' }],
    ['{"type":"unsubscribe","topic":"org"}', { type: 'unsubscribe', topic: 'org' }],
    ['{"type":"ping"}', { type: 'ping' }],
  ])('accepts %s', (text, expected) => {
    expect(parseClientMessage(text)).toEqual(expected);
  });

  it.each([
    'nope',
    '[]',
    'null',
    '{"type":"shout"}',
    '{"type":"subscribe"}',
    `{"type":"subscribe","topic":"${'x'.repeat(201)}"}`,
    '{"type":"subscribe","topic":"org","since":5}',
  ])('refuses %s with a reason', (text) => {
    expect(typeof parseClientMessage(text)).toBe('string');
  });
});
