import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { inject } from 'vitest';
import type { Db } from '../../src/platform/db/index.js';
import { createPgliteDb } from '../../src/platform/db/pglite.js';
import { createPostgresDb } from '../../src/platform/db/postgres.js';

export const usingPostgres = Boolean(process.env.TEST_DATABASE_URL);
export const usingRedis = Boolean(process.env.TEST_REDIS_URL);

export interface TestDb {
  db: Db;
  /** Connection string of this clone (PostgreSQL only), for child processes. */
  url: string | undefined;
  drop(): Promise<void>;
}

/** A fresh, migrated database for one test file. */
export async function createTestDb(): Promise<TestDb> {
  const base = process.env.TEST_DATABASE_URL;
  if (base) {
    const name = `cairn_t_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: base });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject('pgTemplate')}`);
    } finally {
      await admin.end();
    }
    const target = new URL(base);
    target.pathname = `/${name}`;
    const db = createPostgresDb(target.toString(), 10);
    return {
      db,
      url: target.toString(),
      async drop() {
        await db.close();
        const cleanup = new pg.Client({ connectionString: base });
        await cleanup.connect();
        await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await cleanup.end();
      },
    };
  }
  const snapshot = await readFile(inject('pgliteSnapshot'));
  const db = await createPgliteDb({ loadDataDir: new Blob([snapshot]) });
  return { db, url: undefined, drop: () => db.close() };
}
