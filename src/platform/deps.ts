import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import type { Config } from '../config.js';
import type { Authenticator } from '../features/auth/authenticate.js';
import type { QueueRuntime } from '../features/queue/queue.runtime.js';
import type { RunsRuntime } from '../features/runs/runs.runtime.js';
import type { Bus } from './bus.js';
import type { Cache } from './cache.js';
import type { Db } from './db/index.js';
import type { Migration } from './db/migrate.js';

/** Everything a feature may use, passed explicitly (no container, no globals). */
export interface AppDeps {
  config: Config;
  db: Db;
  bus: Bus;
  cache: Cache;
  /** Present when REDIS_URL is set. */
  redis: Redis | null;
  authenticator: Authenticator;
  /** The job queue's per-process state: long-poll waiters, unflushed statistics. */
  queue: QueueRuntime;
  /** The run engine's per-process state: step drivers, pending advances. */
  runs: RunsRuntime;
  jwtSecret: Uint8Array;
  migrations: Migration[];
  metrics: Registry;
  version: string;
}
