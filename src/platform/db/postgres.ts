import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Db, QueryResult, Queryable } from './db.js';
import { parseTimestamptz, TIMESTAMPTZ_OID } from './timestamps.js';

// int8 counts and sizes fit in a JS number for any table Cairn keeps; parse them as
// numbers so both adapters return the same types. timestamptz: see timestamps.ts.
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20 && format !== 'binary') return (value: string) => Number(value);
    if (oid === TIMESTAMPTZ_OID && format !== 'binary') return parseTimestamptz;
    return pg.types.getTypeParser(oid, format);
  },
};

// Every parameterized statement runs as a named prepared statement: PostgreSQL parses and
// plans it once per connection instead of on every call, which on a small machine (where
// the database shares the CPU with the server) is a large part of a simple read's cost.
// Bounded, in case some caller builds SQL text dynamically: past the bound, statements run unnamed.
const statementNames = new Map<string, string>();
const MAX_NAMED_STATEMENTS = 1_000;
function statementName(sql: string): string | undefined {
  let name = statementNames.get(sql);
  if (!name) {
    if (statementNames.size >= MAX_NAMED_STATEMENTS) return undefined;
    name = `cairn_${createHash('sha1').update(sql).digest('hex').slice(0, 16)}`;
    statementNames.set(sql, name);
  }
  return name;
}

function wrap(client: pg.Pool | pg.PoolClient): Queryable {
  return {
    async query<Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<Row>> {
      const result = await client.query({ name: statementName(sql), text: sql, values: params as unknown[] });
      return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
    },
    async exec(sql: string): Promise<void> {
      await client.query(sql);
    },
  };
}

export function createPostgresDb(connectionString: string, poolSize = 10): Db {
  const pool = new pg.Pool({
    connectionString,
    max: poolSize,
    types,
    connectionTimeoutMillis: 5_000,
    // A query stuck behind a lock must not hold a request forever.
    statement_timeout: 30_000,
    application_name: 'cairn',
  });
  // An idle client losing its connection (server restart) must not crash the process;
  // the pool replaces it on next use.
  pool.on('error', () => {});
  const direct = wrap(pool);

  return {
    kind: 'postgres',
    query: direct.query,
    exec: direct.exec,
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
    async withAdvisoryLock(key, fn, opts = { wait: true }) {
      const client = await pool.connect();
      let locked = false;
      try {
        if (opts.wait) {
          await client.query('SELECT pg_advisory_lock($1)', [key.toString()]);
          locked = true;
        } else {
          const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [key.toString()]);
          locked = r.rows[0]?.ok === true;
          if (!locked) return undefined;
        }
        return await fn(wrap(client));
      } finally {
        if (locked) await client.query('SELECT pg_advisory_unlock($1)', [key.toString()]).catch(() => {});
        client.release();
      }
    },
    async close() {
      await pool.end();
    },
  };
}
