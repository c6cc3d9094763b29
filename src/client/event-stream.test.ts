// The stream client against a real server, through a TCP proxy the test can cut: after a
// dropped connection it reconnects and resumes, and the caller sees every event once.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen } from '../../test/events/helpers.js';
import { buildTestApp, type TestApp } from '../../test/helpers/app.js';
import { createOrgAndLogin, type TestUser } from '../../test/helpers/auth.js';
import { publishOrgEvent } from '../platform/bus.js';
import { openEventStream, StreamClosedError, type StreamMessage } from './event-stream.js';

let t: TestApp;
let user: TestUser;
let proxy: net.Server;
let proxyUrl: string;
const links = new Set<net.Socket>();

beforeAll(async () => {
  t = await buildTestApp();
  const target = new URL(await listen(t));
  user = await createOrgAndLogin(t);
  proxy = net.createServer((client) => {
    const server = net.connect(Number(target.port), target.hostname);
    for (const socket of [client, server]) {
      links.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => links.delete(socket));
    }
    client.pipe(server).pipe(client);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
});
afterAll(async () => {
  proxy.close();
  await t.close();
});

const cut = () => links.forEach((s) => s.destroy());

describe('event stream client', () => {
  it('reconnects after a dropped connection and resumes without gap or duplicate', async () => {
    const received: StreamMessage[] = [];
    let subscribed = 0;
    const reconnects: string[] = [];
    const stream = openEventStream(
      { baseUrl: proxyUrl, token: user.accessToken },
      {
        topics: ['org'],
        reconnect: { baseMs: 50, maxMs: 200 },
        onEvent: (e) => received.push(e),
        onSubscribed: () => subscribed++,
        onReconnecting: (reason) => reconnects.push(reason),
      },
    );
    const publish = (n: number) => publishOrgEvent(t.deps.bus, user.orgId, 'project.updated', { project_id: 'p', n });
    await expect.poll(() => subscribed).toBe(1);
    publish(1);
    await expect.poll(() => received.length).toBe(1);
    cut();
    publish(2); // while the client is away
    publish(3);
    await expect.poll(() => subscribed).toBe(2);
    publish(4);
    await expect.poll(() => received.map((e) => e.data.n)).toEqual([1, 2, 3, 4]);
    expect(reconnects).toHaveLength(1);
    stream.close();
    await stream.done;
  });

  it('gives up with StreamClosedError on bad credentials instead of retrying', async () => {
    const stream = openEventStream({ baseUrl: proxyUrl, token: 'not-a-token' }, { topics: ['org'], onEvent: () => {} });
    const error = await stream.done.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StreamClosedError);
    expect((error as StreamClosedError).code).toBe('invalid_token');
  });
});
