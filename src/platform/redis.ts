import { Redis } from 'ioredis';

/**
 * A Redis connection that never takes the process down: commands fail fast while Redis is
 * away (callers degrade), and ioredis keeps reconnecting in the background.
 */
export function createRedis(url: string, name: string): Redis {
  const redis = new Redis(url, {
    connectionName: `cairn-${name}`,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    lazyConnect: true,
  });
  redis.on('error', () => {
    // Reported through health checks and bus status; ioredis retries by itself.
  });
  return redis;
}
