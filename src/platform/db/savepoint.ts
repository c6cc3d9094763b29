// A part of a transaction that may fail without failing the rest: work the caller can
// also do later, on its own (a run's advance inside an agent's completion report), must
// never turn the report it rides on into an error.
import type { Queryable } from './db.js';

// One name for every savepoint: RELEASE and ROLLBACK TO act on the most recent unreleased
// savepoint of a name, so nested ones still pair up. Sent as plain statements (`exec`),
// not prepared ones: a fresh name each time would have added a prepared statement per call.
const SAVEPOINT = 'cairn_try';

/**
 * Runs `fn` inside a savepoint of the caller's open transaction. When it throws, the
 * savepoint is rolled back (the transaction stays usable) and the error is returned
 * instead of thrown; otherwise the savepoint is released and `fn`'s result returned.
 */
export async function tryInSavepoint<T>(
  tx: Queryable,
  fn: () => Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  await tx.exec(`SAVEPOINT ${SAVEPOINT}`);
  try {
    const value = await fn();
    await tx.exec(`RELEASE SAVEPOINT ${SAVEPOINT}`);
    return { ok: true, value };
  } catch (error) {
    await tx.exec(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
    return { ok: false, error };
  }
}
