// A client that stops reading is cut off (close code 4008) once its send buffer passes the
// limit, while the server's queued bytes stay bounded and healthy clients get everything;
// a client that stops answering pings is dropped.
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishOrgEvent } from '../../src/platform/bus.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createOrgAndLogin, type TestUser } from '../helpers/auth.js';
import { TestSocket, listen, wsUrl } from './helpers.js';

const LIMIT = 65_536;

async function metric(t: TestApp, name: string): Promise<number> {
  const text = (await t.app.inject({ url: '/metrics' })).body;
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

describe('slow consumers', () => {
  let t: TestApp;
  let base: string;
  let user: TestUser;
  beforeAll(async () => {
    t = await buildTestApp({ CAIRN_EVENTS_MAX_BUFFER_BYTES: String(LIMIT) });
    base = await listen(t);
    user = await createOrgAndLogin(t);
  });
  afterAll(() => t.close());

  it('cuts off a client that stops reading, with 4008, and keeps its queue bounded', async () => {
    const headers = { authorization: `Bearer ${user.accessToken}` };
    const slow = await TestSocket.open(wsUrl(base, '?topics=org'), { headers });
    const healthy = await TestSocket.open(wsUrl(base, '?topics=org'), { headers });
    await slow.next((m) => m.type === 'subscribed');
    await healthy.next((m) => m.type === 'subscribed');
    // Stop reading: the kernel's buffers fill first, then the server's queue for this socket.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();

    const blob = 'x'.repeat(16_000);
    let published = 0;
    let peakQueued = 0;
    for (let batch = 0; batch < 400 && (await metric(t, 'cairn_event_stream_slow_consumers_total')) === 0; batch++) {
      for (let i = 0; i < 10; i++) {
        publishOrgEvent(t.deps.bus, user.orgId, 'project.updated', { project_id: 'p', n: published++, blob });
      }
      const last = published - 1;
      await healthy.next((m) => m.data.n === last, { from: healthy.messages.length - 20 });
      peakQueued = Math.max(peakQueued, await metric(t, 'cairn_event_stream_buffered_bytes'));
    }
    expect(await metric(t, 'cairn_event_stream_slow_consumers_total')).toBe(1);
    // At most the limit plus the message that crossed it (and one in flight to the healthy client).
    expect(peakQueued).toBeLessThanOrEqual(LIMIT + 3 * 16_200);

    // Read again: what was queued arrives, then the close frame says why.
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    expect((await slow.closed).code).toBe(4008);
    const received = slow.events().length;
    expect(received).toBeLessThan(published);
    expect(slow.events().map((m) => m.data.n)).toEqual([...Array(received).keys()]); // a prefix, in order

    // The healthy client got every event, and the stream goes on.
    expect(healthy.events().map((m) => m.data.n)).toEqual([...Array(published).keys()]);
    publishOrgEvent(t.deps.bus, user.orgId, 'project.updated', { project_id: 'p', n: 'after' });
    await healthy.next((m) => m.data.n === 'after');
    expect(await metric(t, 'cairn_event_streams')).toBe(1);
    healthy.close();
  });
});

describe('heartbeats', () => {
  let t: TestApp;
  let base: string;
  let user: TestUser;
  beforeAll(async () => {
    t = await buildTestApp({ CAIRN_EVENTS_HEARTBEAT_SECONDS: '1' });
    base = await listen(t);
    user = await createOrgAndLogin(t);
  });
  afterAll(() => t.close());

  it('drops a client that does not answer pings, and keeps one that does', async () => {
    const headers = { authorization: `Bearer ${user.accessToken}` };
    const silent = await TestSocket.open(wsUrl(base), { headers, autoPong: false });
    const lively = await TestSocket.open(wsUrl(base), { headers });
    let pings = 0;
    const pinged = new Promise<void>((resolve) =>
      lively.ws.on('ping', () => {
        if (++pings === 3) resolve();
      }),
    );
    expect((await silent.closed).code).toBe(1006); // terminated: no close handshake with a dead peer
    await pinged;
    expect(lively.ws.readyState).toBe(WebSocket.OPEN);
    lively.close();
  });
});
