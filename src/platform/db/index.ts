import type { Config } from '../../config.js';
import type { Db } from './db.js';
import { createPgliteDb } from './pglite.js';
import { createPostgresDb } from './postgres.js';

export type { Db, Queryable, QueryResult } from './db.js';
export { LOCK_KEYS } from './db.js';
export { tryInSavepoint } from './savepoint.js';

/** PostgreSQL when DATABASE_URL is set, otherwise embedded PGlite in the data directory. */
export async function openDb(config: Pick<Config, 'databaseUrl' | 'databasePoolSize' | 'dataDir'>): Promise<Db> {
  if (config.databaseUrl) return createPostgresDb(config.databaseUrl, config.databasePoolSize);
  const dataDir = config.dataDir === 'memory://' ? undefined : `${config.dataDir}/pgdata`;
  return createPgliteDb({ dataDir });
}
