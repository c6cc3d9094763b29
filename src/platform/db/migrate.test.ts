import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { usingPostgres } from '../../../test/helpers/db.js';
import { createPgliteDb } from './pglite.js';
import { createPostgresDb } from './postgres.js';
import { loadMigrations, migrate } from './migrate.js';

async function emptyPostgres() {
  const base = process.env.TEST_DATABASE_URL!;
  const name = `cairn_m_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

describe('migrations', () => {
  it('apply every file once; a second run does nothing', async () => {
    const db = await createPgliteDb();
    const all = await loadMigrations();
    expect((await migrate(db)).applied).toEqual(all.map((m) => m.version));
    expect((await migrate(db)).applied).toEqual([]);
    await db.close();
  });

  it('refuse to boot when an applied migration was edited', async () => {
    const db = await createPgliteDb();
    const all = await loadMigrations();
    await migrate(db, all);
    const edited = all.map((m, i) => (i === 0 ? { ...m, checksum: 'different' } : m));
    await expect(migrate(db, edited)).rejects.toThrow(/was changed after it was applied/);
    await db.close();
  });

  it.runIf(usingPostgres)('two replicas migrating an empty PostgreSQL at once apply each migration exactly once', async () => {
    const target = await emptyPostgres();
    const a = createPostgresDb(target.url, 2);
    const b = createPostgresDb(target.url, 2);
    try {
      const [ra, rb] = await Promise.all([migrate(a), migrate(b)]);
      const all = (await loadMigrations()).map((m) => m.version);
      expect([...ra.applied, ...rb.applied].sort((x, y) => x - y)).toEqual(all);
      const { rows } = await a.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
      expect(rows[0]!.n).toBe(all.length);
    } finally {
      await a.close();
      await b.close();
      await target.drop();
    }
  });

  it('two concurrent runs on one embedded database apply each migration exactly once', async () => {
    const db = await createPgliteDb();
    const [ra, rb] = await Promise.all([migrate(db), migrate(db)]);
    const all = (await loadMigrations()).map((m) => m.version);
    expect([...ra.applied, ...rb.applied].sort((x, y) => x - y)).toEqual(all);
    await db.close();
  });
});
