// The Redis bus through a Redis crash and restart, with two in-process "replicas" on a
// private redis-server: local delivery goes on while Redis is away, subscribers that asked
// for notices learn what they may have missed, and cross-replica delivery comes back.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bus, BusEvent } from '../../src/platform/bus.js';
import { createRedisBus } from '../../src/platform/bus.redis.js';
import { createRedis } from '../../src/platform/redis.js';
import { haveRedisServer, startPrivateRedis, type PrivateRedis } from './redis-server.js';

describe.skipIf(!haveRedisServer)('bus through a Redis outage', () => {
  let redis: PrivateRedis;
  let a: Bus;
  let b: Bus;
  const conns: ReturnType<typeof createRedis>[] = [];
  beforeAll(async () => {
    redis = await startPrivateRedis();
    const channel = `cairn:test:${randomBytes(4).toString('hex')}`;
    for (const name of ['a', 'a-sub', 'b', 'b-sub']) conns.push(createRedis(redis.url, name));
    await Promise.all(conns.map((c) => c.connect()));
    a = createRedisBus(conns[0]!, conns[1]!, undefined, channel);
    b = createRedisBus(conns[2]!, conns[3]!, undefined, channel);
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
    conns.forEach((c) => c.disconnect());
    await redis.stop();
  });

  it('delivers locally while Redis is down, reports it, and recovers with notices and gap markers', async () => {
    const org = `org:${randomBytes(4).toString('hex')}`;
    const onA: BusEvent[] = [];
    const onB: BusEvent[] = [];
    a.subscribe(org, (e) => onA.push(e), { notices: true });
    b.subscribe(org, (e) => onB.push(e), { notices: true });
    const plain: BusEvent[] = [];
    b.subscribe(org, (e) => plain.push(e)); // no notices asked for: never sees bus.* types
    await Promise.all([a.ready(org), b.ready(org)]);

    a.publish(org, 'project.updated', { n: 1 });
    await expect.poll(() => onB.map((e) => e.data)).toEqual([{ n: 1 }]);

    await redis.kill();
    await expect.poll(() => a.status().ok || b.status().ok).toBe(false);
    expect(a.status().detail).toMatch(/this replica's subscribers only/);
    await expect.poll(() => onB.map((e) => e.type)).toContain('bus.interrupted');
    b.publish(org, 'project.updated', { n: 2 });
    const local = onB.find((e) => (e.data as { n?: number }).n === 2);
    expect(local?.id).toMatch(/^L/); // delivered at once, locally, and marked as not resumable
    expect(await b.history(org, local!.id!)).toBeNull();
    expect(onA.some((e) => (e.data as { n?: number }).n === 2)).toBe(false);

    await redis.restart();
    await expect.poll(() => a.status().ok && b.status().ok, { timeout: 15_000 }).toBe(true);
    await expect.poll(() => onA.map((e) => e.type)).toContain('bus.resumed');
    // B publishes its gap marker once its own subscription is back, so B's subscribers always
    // see it; A sees it live only if A had resubscribed by then (a race no assertion can pin).
    await expect.poll(() => onB.map((e) => e.type)).toContain('bus.gap');
    a.publish(org, 'project.updated', { n: 3 });
    await expect.poll(() => onB.some((e) => (e.data as { n?: number }).n === 3)).toBe(true);
    expect(plain.map((e) => (e.data as { n: number }).n)).toEqual([1, 2, 3]);
  });
});
