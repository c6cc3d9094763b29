import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { usingRedis } from '../../test/helpers/db.js';
import { compareEventIds, createMemoryBus, type Bus, type BusEvent } from './bus.js';
import { createRedisBus } from './bus.redis.js';
import { createMemoryCache, createRedisCache, type Cache } from './cache.js';
import { createRedis } from './redis.js';

function nextEvent(subscribe: (h: (e: BusEvent) => void) => () => void): Promise<BusEvent> {
  return new Promise((resolve) => {
    const off = subscribe((e) => {
      off();
      resolve(e);
    });
  });
}

describe('memory bus', () => {
  it('delivers by exact topic and by prefix, and stops after unsubscribe', () => {
    const bus = createMemoryBus();
    const seen: string[] = [];
    const offExact = bus.subscribe('project:1', (e) => seen.push(`exact:${e.type}`));
    bus.subscribe('project:*', (e) => seen.push(`prefix:${e.topic}`));
    bus.publish('project:1', 'project.created', {});
    bus.publish('project:2', 'project.updated', {});
    bus.publish('org:1', 'x', {});
    offExact();
    bus.publish('project:1', 'project.deleted', {});
    expect(seen).toEqual(['exact:project.created', 'prefix:project:1', 'prefix:project:2', 'prefix:project:1']);
  });

  it('isolates a failing subscriber', () => {
    const bus = createMemoryBus();
    let delivered = 0;
    bus.subscribe('t', () => {
      throw new Error('boom');
    });
    bus.subscribe('t', () => delivered++);
    bus.publish('t', 'x', {});
    expect(delivered).toBe(1);
  });
});

describe.runIf(usingRedis)('redis bus', () => {
  it('carries events between two replicas, and each replica gets its own events once', async () => {
    const url = process.env.TEST_REDIS_URL!;
    const channel = `cairn:test:${randomBytes(4).toString('hex')}`;
    const conns = [createRedis(url, 'a'), createRedis(url, 'a-sub'), createRedis(url, 'b'), createRedis(url, 'b-sub')];
    await Promise.all(conns.map((c) => c.connect()));
    const [pa, sa, pb, sb] = conns as [(typeof conns)[0], (typeof conns)[0], (typeof conns)[0], (typeof conns)[0]];
    const a = createRedisBus(pa, sa, undefined, channel);
    const b = createRedisBus(pb, sb, undefined, channel);
    try {
      await expect.poll(() => a.status().ok && b.status().ok).toBe(true);
      const onB = nextEvent((h) => b.subscribe('org:*', h));
      const local: BusEvent[] = [];
      a.subscribe('org:*', (e) => local.push(e));
      // Org channels are subscribed on demand: wait until both subscriptions are live.
      await Promise.all([a.ready('org:*'), b.ready('org:*')]);
      a.publish('org:1', 'project.created', { id: 1 });
      const received = await onB;
      expect(received).toMatchObject({ topic: 'org:1', type: 'project.created', data: { id: 1 } });
      // Org events reach the publishing replica through Redis too, with the same id.
      await expect.poll(() => local.map((e) => e.id)).toEqual([received.id]);
    } finally {
      await a.close();
      await b.close();
      conns.forEach((c) => c.disconnect());
    }
  });
});

type BusFactory = (history: { size: number; ttlMs: number }) => Promise<{ buses: [Bus, Bus]; done: () => Promise<void> }>;
const busFactories: [string, BusFactory][] = [
  [
    'memory',
    async (history) => {
      // One process: both "replicas" are the same bus.
      const bus = createMemoryBus(undefined, history);
      return { buses: [bus, bus], done: async () => {} };
    },
  ],
];
if (usingRedis) {
  busFactories.push([
    'redis',
    async (history) => {
      const channel = `cairn:test:${randomBytes(4).toString('hex')}`;
      const conns = [1, 2, 3, 4].map((n) => createRedis(process.env.TEST_REDIS_URL!, `t${n}`));
      await Promise.all(conns.map((c) => c.connect()));
      const a = createRedisBus(conns[0]!, conns[1]!, undefined, channel, history);
      const b = createRedisBus(conns[2]!, conns[3]!, undefined, channel, history);
      await expect.poll(() => a.status().ok && b.status().ok).toBe(true);
      return {
        buses: [a, b],
        done: async () => {
          await Promise.all([a.close(), b.close()]);
          conns.forEach((c) => c.disconnect());
        },
      };
    },
  ]);
}

describe.each(busFactories)('%s bus: org history', (_name, make) => {
  it('gives every replica the same ids in one order, and resumes from any of them', async () => {
    const { buses, done } = await make({ size: 1000, ttlMs: 60_000 });
    const [a, b] = buses;
    try {
      const org = `org:${randomBytes(4).toString('hex')}`;
      const seen: BusEvent[] = [];
      b.subscribe(org, (e) => seen.push(e));
      await b.ready(org);
      const start = await b.position(org);
      expect(await a.history(org, start)).toEqual([]);
      for (let i = 0; i < 6; i++) (i % 2 ? a : b).publish(org, 'project.updated', { n: i });
      await expect.poll(() => seen.length).toBe(6);
      const ids = seen.map((e) => e.id!);
      expect([...ids].sort(compareEventIds)).toEqual(ids);
      expect(new Set(ids).size).toBe(6);
      const all = await a.history(org, start);
      expect(all?.map((e) => e.id)).toEqual(ids);
      expect(all?.map((e) => e.data)).toEqual(seen.map((e) => e.data));
      expect((await b.history(org, ids[3]!))?.map((e) => e.id)).toEqual(ids.slice(4));
      expect(await a.position(org)).toBe(ids[5]);
      // An id this history never had (another history's, a forged one) cannot be resumed from.
      expect(await a.history(org, '1-0')).toBeNull();
      expect(await a.history(org, 'not-an-id')).toBeNull();
    } finally {
      await done();
    }
  });

  it('keeps live-only types out of the history, and refuses to resume from trimmed ids', async () => {
    const { buses, done } = await make({ size: 50, ttlMs: 60_000 });
    const [a, b] = buses;
    try {
      const org = `org:${randomBytes(4).toString('hex')}`;
      const logs: BusEvent[] = [];
      b.subscribe(org, (e) => e.type === 'job.log' && logs.push(e));
      await b.ready(org);
      const start = await a.position(org);
      a.publish(org, 'job.log', { offset: 0, data: 'hello' });
      a.publish(org, 'job.started', {});
      await expect.poll(() => logs.length).toBe(1);
      expect(logs[0]!.id).toBeUndefined();
      expect((await b.history(org, start))?.map((e) => e.type)).toEqual(['job.started']);
      // Redis trims whole stream nodes (100 entries by default), so go well past the size.
      for (let i = 0; i < 300; i++) a.publish(org, 'project.updated', { n: i });
      await expect.poll(async () => (await a.history(org, start)) === null).toBe(true);
      const last = await a.position(org);
      a.publish(org, 'project.updated', { n: 'after' });
      await expect.poll(async () => (await b.history(org, last))?.map((e) => e.data)).toEqual([{ n: 'after' }]);
    } finally {
      await done();
    }
  });
});

type CacheFactory = () => Promise<{ cache: Cache; done: () => void }>;
const caches: [string, CacheFactory][] = [['memory', async () => ({ cache: createMemoryCache(), done: () => {} })]];
if (usingRedis) {
  caches.push([
    'redis',
    async () => {
      const redis = createRedis(process.env.TEST_REDIS_URL!, 'cache');
      await redis.connect();
      return { cache: createRedisCache(redis, `cairn:test:${randomBytes(4).toString('hex')}:`), done: () => redis.disconnect() };
    },
  ]);
}

describe.each(caches)('%s cache', (_name, make) => {
  it('stores with a TTL, counts, and deletes', async () => {
    const { cache, done } = await make();
    await cache.set('k', 'v', 60_000);
    expect(await cache.get('k')).toBe('v');
    expect(await cache.increment('n', 60_000)).toBe(1);
    expect(await cache.increment('n', 60_000)).toBe(2);
    await cache.delete('n');
    expect(await cache.get('n')).toBeUndefined();
    await cache.set('once', 'v', 60_000);
    expect(await Promise.all([cache.take('once'), cache.take('once')])).toEqual(['v', undefined]);
    await cache.set('short', 'v', 1);
    await expect.poll(() => cache.get('short')).toBeUndefined();
    done();
  });
});
