// A part of a transaction that may fail without failing the rest: work the caller can
// also do later, on its own (a run's advance inside an agent's completion report), must
// never turn the report it rides on into an error.
import type { Queryable } from './db.js';

let counter = 0;

/**
 * Runs `fn` inside a savepoint of the caller's open transaction. When it throws, the
 * savepoint is rolled back (the transaction stays usable) and the error is returned
 * instead of thrown; otherwise the savepoint is released and `fn`'s result returned.
 */
export async function tryInSavepoint<T>(
  tx: Queryable,
  fn: () => Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  const name = `cairn_sp_${++counter}`;
  await tx.query(`SAVEPOINT ${name}`);
  try {
    const value = await fn();
    await tx.query(`RELEASE SAVEPOINT ${name}`);
    return { ok: true, value };
  } catch (error) {
    await tx.query(`ROLLBACK TO SAVEPOINT ${name}`);
    return { ok: false, error };
  }
}
