import { mkdir } from 'node:fs/promises';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import type { Db, QueryResult, Queryable } from './db.js';

type Runner = Pick<PGlite, 'query' | 'exec'> | Transaction;

function wrap(runner: Runner): Queryable {
  return {
    async query<Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<Row>> {
      const result = await runner.query<Row>(sql, params as unknown[]);
      return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await runner.exec(sql);
    },
  };
}

export interface PgliteOptions {
  /** A directory to persist into, or undefined for an in-memory database. */
  dataDir?: string;
  /** A dump (from `dumpDataDir`) to start from: tests clone one migrated snapshot. */
  loadDataDir?: Blob;
}

/**
 * Embedded PostgreSQL. PGlite is one backend in this process, so queries are serialized;
 * a transaction holds it exclusively until it ends, which also makes advisory locks
 * trivially uncontended.
 */
export async function createPgliteDb(opts: PgliteOptions = {}): Promise<Db & { raw: PGlite }> {
  if (opts.dataDir) await mkdir(opts.dataDir, { recursive: true });
  const raw = await PGlite.create({
    ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
    ...(opts.loadDataDir ? { loadDataDir: opts.loadDataDir } : {}),
    parsers: { 20: (value: string) => Number(value) },
  });
  const direct = wrap(raw);
  const locks = new Map<bigint, Promise<void>>();
  return {
    kind: 'pglite',
    raw,
    query: direct.query,
    exec: direct.exec,
    transaction: (fn) => raw.transaction((tx) => fn(wrap(tx))),
    async withAdvisoryLock(key, fn, opts = { wait: true }) {
      // One backend: PostgreSQL's session locks would be re-entrant for every caller here,
      // so exclusivity between callers in this process comes from a local lock chain.
      const held = locks.get(key);
      if (held && !opts.wait) return undefined;
      let release!: () => void;
      const mine = new Promise<void>((resolve) => (release = resolve));
      const previous = held ?? Promise.resolve();
      const chained = previous.then(() => mine);
      locks.set(key, chained);
      await previous;
      try {
        return await fn(direct);
      } finally {
        release();
        if (locks.get(key) === chained) locks.delete(key);
      }
    },
    async close() {
      if (!raw.closed) await raw.close();
    },
  };
}
