// A small shared cache: in-process without Redis, Redis with it (so counters such as
// failed-login throttles hold across replicas).
import type { Redis } from 'ioredis';

export interface Cache {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** Increments a counter that expires `ttlMs` after its first increment. */
  increment(key: string, ttlMs: number): Promise<number>;
  delete(key: string): Promise<void>;
  /** Reads and deletes in one step: of two concurrent callers (two replicas), only one gets the value. */
  take(key: string): Promise<string | undefined>;
}

/** Bounded: past `maxEntries` the oldest entries go first (Map keeps insertion order). */
export function createMemoryCache(maxEntries = 100_000): Cache {
  const entries = new Map<string, { value: string; expiresAt: number }>();
  const live = (key: string) => {
    const entry = entries.get(key);
    if (entry && entry.expiresAt <= Date.now()) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };
  const put = (key: string, value: string, expiresAt: number) => {
    entries.delete(key);
    entries.set(key, { value, expiresAt });
    if (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
  };
  return {
    async get(key) {
      return live(key)?.value;
    },
    async set(key, value, ttlMs) {
      put(key, value, Date.now() + ttlMs);
    },
    async increment(key, ttlMs) {
      const entry = live(key);
      const next = (entry ? Number(entry.value) : 0) + 1;
      put(key, String(next), entry?.expiresAt ?? Date.now() + ttlMs);
      return next;
    },
    async delete(key) {
      entries.delete(key);
    },
    async take(key) {
      const value = live(key)?.value;
      entries.delete(key);
      return value;
    },
  };
}

export function createRedisCache(redis: Redis, prefix = 'cairn:cache:'): Cache {
  return {
    async get(key) {
      return (await redis.get(prefix + key)) ?? undefined;
    },
    async set(key, value, ttlMs) {
      await redis.set(prefix + key, value, 'PX', ttlMs);
    },
    async increment(key, ttlMs) {
      const [[, count]] = (await redis
        .multi()
        .incr(prefix + key)
        .pexpire(prefix + key, ttlMs, 'NX')
        .exec()) as [[unknown, number], unknown];
      return count;
    },
    async delete(key) {
      await redis.del(prefix + key);
    },
    async take(key) {
      return (await redis.getdel(prefix + key)) ?? undefined;
    },
  };
}
