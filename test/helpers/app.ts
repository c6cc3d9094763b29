import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import type { Db } from '../../src/platform/db/index.js';
import type { AppDeps } from '../../src/platform/deps.js';
import { openDeps } from '../../src/server.js';
import { createTestDb, usingRedis } from './db.js';

export interface TestApp {
  app: App;
  deps: AppDeps;
  close(): Promise<void>;
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    CAIRN_DATA_DIR: 'memory://',
    CAIRN_LOG_LEVEL: 'silent',
    CAIRN_JWT_SECRET: randomBytes(32).toString('hex'),
    // Generous limits so tests that send many requests are not throttled; the rate-limit
    // test sets its own.
    CAIRN_RATE_LIMIT_ANONYMOUS: '100000',
    CAIRN_RATE_LIMIT_AUTHENTICATED: '100000',
    CAIRN_MAX_EVENT_LOOP_DELAY_MS: '0',
    ...(usingRedis ? { REDIS_URL: process.env.TEST_REDIS_URL! } : {}),
    ...overrides,
  });
}

/** The real app on a fresh database clone (and real Redis when TEST_REDIS_URL is set). */
export async function buildTestApp(overrides: Record<string, string> = {}): Promise<TestApp> {
  // Each app gets its own blob directory (artifacts), removed on close, so tests can look
  // inside it and never see another file's blobs.
  const blobDir = overrides.CAIRN_BLOB_DIR ? undefined : await mkdtemp(path.join(os.tmpdir(), 'cairn-test-blobs-'));
  const config = testConfig({ ...(blobDir ? { CAIRN_BLOB_DIR: blobDir } : {}), ...overrides });
  const testDb = await createTestDb();
  const instance = await buildAppOn(config, testDb.db);
  return {
    app: instance.app,
    deps: instance.deps,
    async close() {
      await instance.close();
      await testDb.drop();
      if (blobDir) await rm(blobDir, { recursive: true, force: true });
    },
  };
}

/**
 * The real app on a database the caller owns (a replica of an installation, when two share
 * one database and one configuration); close() leaves the database open.
 */
export async function buildAppOn(config: Config, db: Db): Promise<TestApp> {
  const log = pino({ level: 'silent' }) as FastifyBaseLogger;
  // Each instance gets its own bus channel (and rate-limit namespace) in a shared Redis.
  const deps = await openDeps(config, { log, db, busChannel: `cairn:test:${randomBytes(6).toString('hex')}` });
  const app = await buildApp(deps, { logger: log });
  return {
    app,
    deps,
    async close() {
      await app.close();
      deps.authenticator.close();
      await deps.runs.close();
      await deps.queue.close();
      await deps.bus.close();
      deps.redis?.disconnect();
    },
  };
}
