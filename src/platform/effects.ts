// Side effects that must wait for the commit: bus events (a subscriber may read the row
// at once, so it must be there), in-memory counters (a rolled-back change did not happen).
// Collected inside the transaction, run only after it committed.
import type { Db, Queryable } from './db/index.js';

export class AfterCommit {
  private readonly effects: (() => void)[] = [];

  add(effect: () => void): void {
    this.effects.push(effect);
  }

  /** Where the list stands now, to drop what a rolled-back savepoint added (`discardSince`). */
  mark(): number {
    return this.effects.length;
  }

  discardSince(mark: number): void {
    this.effects.splice(mark);
  }

  run(): void {
    for (const effect of this.effects.splice(0)) effect();
  }
}

export async function transactionWithEffects<T>(db: Db, fn: (tx: Queryable, after: AfterCommit) => Promise<T>): Promise<T> {
  const after = new AfterCommit();
  const result = await db.transaction((tx) => fn(tx, after));
  after.run();
  return result;
}
