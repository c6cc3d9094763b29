// Resuming a topic after a disconnect: from the organization's shared history (no gap, no
// duplicate), `resync` when the id is too old, and the ledger's checkpoints from the database.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestSocket, listen, wsUrl, type Message } from '../../../test/events/helpers.js';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { compareEventIds, publishOrgEvent } from '../../platform/bus.js';
import { startLedgerLoops } from '../ledger/ledger.loops.js';

let t: TestApp;
let base: string;
let alice: TestUser;
beforeAll(async () => {
  t = await buildTestApp({ CAIRN_EVENTS_HISTORY: '10' });
  base = await listen(t);
  alice = await createOrgAndLogin(t);
});
afterAll(() => t.close());

const open = () => TestSocket.open(wsUrl(base), { headers: { authorization: `Bearer ${alice.accessToken}` } });

async function newProject(name: string): Promise<string> {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/projects', headers: alice.headers, payload: { name } });
  return res.json<{ id: string }>().id;
}

async function describeProject(id: string, description: string): Promise<void> {
  const res = await t.app.inject({
    method: 'PATCH',
    url: `/api/v1/projects/${id}`,
    headers: alice.headers,
    payload: { description },
  });
  expect(res.statusCode).toBe(200);
}

const descriptions = (messages: Message[]) =>
  messages.map((m) => (m.data.project as { description?: string } | undefined)?.description);

describe('resume', () => {
  it('gets exactly what it missed while disconnected, then live events', async () => {
    const id = await newProject('Resumable');
    const topic = `project:${id}`;
    const first = await open();
    await first.subscribe(topic);
    for (const n of [1, 2, 3]) await describeProject(id, `v${n}`);
    const lastSeen = await first.next((m) => m.topic === topic && descriptions([m])[0] === 'v3');
    first.close();
    await first.closed;
    for (const n of [4, 5]) await describeProject(id, `v${n}`);

    const second = await open();
    const ack = await second.subscribe(topic, lastSeen.id!);
    expect(ack).toMatchObject({ type: 'subscribed', data: { position: lastSeen.id } });
    await second.next((m) => m.topic === topic && descriptions([m])[0] === 'v5');
    await describeProject(id, 'v6');
    await second.next((m) => m.topic === topic && descriptions([m])[0] === 'v6');
    const resumed = second.events(topic);
    expect(descriptions(resumed)).toEqual(['v4', 'v5', 'v6']);
    const ids = resumed.map((m) => m.id!);
    expect([lastSeen.id!, ...ids].sort(compareEventIds)).toEqual([lastSeen.id, ...ids]);
    expect(second.messages.some((m) => m.type === 'resync')).toBe(false);
    second.close();
  });

  it('resumes from the acknowledged position when nothing arrived before the disconnect', async () => {
    const id = await newProject('Quiet');
    const first = await open();
    const ack = await first.subscribe(`project:${id}`);
    first.close();
    await first.closed;
    await describeProject(id, 'while away');
    const second = await open();
    await second.subscribe(`project:${id}`, String(ack.data.position));
    expect(descriptions([await second.next((m) => m.type === 'project.updated')])).toEqual(['while away']);
    second.close();
  });

  it('answers resync when the id is no longer (or never was) in the history, and keeps the subscription live', async () => {
    const id = await newProject('Busy');
    const socket = await open();
    const start = await socket.subscribe(`project:${id}`);
    socket.close();
    await socket.closed;
    // Far past the history's size (10 here; Redis trims in whole stream nodes of 100).
    for (let i = 0; i < 300; i++) publishOrgEvent(t.deps.bus, alice.orgId, 'project.updated', { project_id: id, n: i });
    await expect
      .poll(async () => (await t.deps.bus.history(`org:${alice.orgId}`, String(start.data.position))) === null)
      .toBe(true);

    const again = await open();
    for (const since of [String(start.data.position), '1-0', 'garbage']) {
      const from = again.messages.length;
      again.send({ type: 'subscribe', topic: `project:${id}`, since });
      const resync = await again.next((m) => m.type === 'resync', { from });
      expect(resync.data).toMatchObject({ reason: 'too_old' });
      expect(again.messages.slice(from).map((m) => m.type)).toEqual(['subscribed', 'resync']);
    }
    publishOrgEvent(t.deps.bus, alice.orgId, 'project.updated', { project_id: id, n: 'live' });
    expect((await again.next((m) => m.data.n === 'live')).topic).toBe(`project:${id}`);
    again.close();
  });
});

describe('ledger topic', () => {
  it('delivers signed checkpoints (never internal ledger nudges) and resumes them from the database', async () => {
    const loops = await startLedgerLoops(t.deps, pino({ level: 'silent' }));
    try {
      const socket = await open();
      const ack = await socket.subscribe('ledger');
      await newProject('Audited');
      await loops.flush();
      const checkpoint = await socket.next((m) => m.type === 'ledger.checkpoint');
      expect(Number(checkpoint.id)).toBeGreaterThan(Number(ack.data.position));
      expect(checkpoint.data).toMatchObject({ size: Number(checkpoint.id), note: expect.stringContaining('— ') });
      expect(socket.messages.every((m) => m.type !== 'leaf.queued')).toBe(true);

      const later = await open();
      await later.subscribe('ledger', String(ack.data.position));
      const missed = await later.next((m) => m.type === 'ledger.checkpoint');
      expect(missed.id).toBe(checkpoint.id);
      expect((await later.subscribe('ledger', '999999999')).type).toBe('subscribed');
      await later.next((m) => m.type === 'resync' && m.data.reason === 'too_old');
      socket.close();
      later.close();
    } finally {
      await loops.stop();
    }
  });
});
