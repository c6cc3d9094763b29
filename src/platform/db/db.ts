// One small interface over PostgreSQL (node-postgres pool) and embedded PGlite, so every
// query function runs unchanged in both modes and inside or outside a transaction.

export interface QueryResult<Row> {
  rows: Row[];
  rowCount: number;
}

/** Anything that runs SQL: the database itself or an open transaction. */
export interface Queryable {
  query<Row = Record<string, unknown>>(this: void, sql: string, params?: readonly unknown[]): Promise<QueryResult<Row>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(this: void, sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` in one transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` on one dedicated session holding a session-level advisory lock, so
   * replicas serialize (migrations) or elect one leader (background loops).
   * With `wait: false` it returns `undefined` at once when another session holds the lock.
   */
  withAdvisoryLock<T>(key: bigint, fn: (session: Queryable) => Promise<T>, opts?: { wait: boolean }): Promise<T | undefined>;
  close(): Promise<void>;
}

/**
 * Stable 63-bit advisory-lock keys, one per purpose, named so `pg_locks` is readable.
 * "cairn" + a number; 0x01xx belongs to the ledger (ledger.identity.ts). Every key lives
 * here or is listed here, so two loops never share one by accident.
 */
export const LOCK_KEYS = {
  migrations: 0x636169726e_0001n,
  queueMaintenance: 0x636169726e_0201n,
  runSweeper: 0x636169726e_0301n,
  approvalExpiry: 0x636169726e_0401n,
  deploymentSweeper: 0x636169726e_0501n,
  scheduler: 0x636169726e_0601n,
  artifactRetention: 0x636169726e_0701n,
} as const;
