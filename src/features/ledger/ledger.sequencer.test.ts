import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../../../test/helpers/db.js';
import { createOrg, recordEvents, testIdentity } from '../../../test/ledger/helpers.js';
import type { Db, Queryable } from '../../platform/db/index.js';
import { auditLeafHash } from '../audit/audit.record.js';
import { cutCheckpoint } from './ledger.checkpoints.js';
import type { LedgerIdentity } from './ledger.identity.js';
import { checkIntegrity } from './ledger.integrity.js';
import { hasQueuedLeaves, readHead } from './ledger.queries.js';
import { backlogDrainer, SEQUENCE_BATCH, sequenceAll } from './ledger.sequencer.js';
import { MemoryTree, rootFromFrontier } from './merkle/index.js';

let t: TestDb;
let identity: LedgerIdentity;
let orgId: string;

beforeAll(async () => {
  t = await createTestDb();
  identity = await testIdentity(t.db);
  orgId = await createOrg(t.db);
});
afterAll(async () => t.drop());

/**
 * The database, except that the statement moving queue rows into the log fails whenever it
 * is asked for more than `maxMove` leaves, as a statement timeout would on a batch too
 * large to finish in time.
 */
function failingOverSize(db: Db, maxMove: number): Db {
  const guard =
    (q: Queryable): Queryable['query'] =>
    (sql, params) => {
      if (sql.includes('DELETE FROM ledger_queue') && Number(params?.[1]) > maxMove) {
        return Promise.reject(new Error('canceling statement due to statement timeout'));
      }
      return q.query(sql, params);
    };
  return {
    ...db,
    query: guard(db),
    transaction: (fn) => db.transaction((tx) => fn({ ...tx, query: guard(tx) })),
  };
}

describe('the sequencer loop under batches that cannot finish', () => {
  it('halves the batch after each failure until one goes through, and appends everything in order', async () => {
    await sequenceAll(t.db);
    const before = await readHead(t.db);
    const events = await recordEvents(t.db, orgId, 300, 'shrink');
    const drainer = backlogDrainer(failingOverSize(t.db, 64));

    const failedAt: number[] = [];
    while (await hasQueuedLeaves(t.db)) {
      const asked = drainer.batchLimit();
      await drainer.drain().catch(() => failedAt.push(asked));
      expect(failedAt.length).toBeLessThan(20); // it must make progress, not retry for ever
    }
    // 5,000 → 2,500 → … → 78 fail; 39 is the first size that goes through.
    const sizes: number[] = [];
    for (let size = SEQUENCE_BATCH; size > 64; size = Math.floor(size / 2)) sizes.push(size);
    expect(failedAt).toEqual(sizes);

    const head = await readHead(t.db);
    expect(head.size).toBe(before.size + 300);
    const tree = new MemoryTree();
    const { rows } = await t.db.query<{ leaf_hash: Buffer }>('SELECT leaf_hash FROM ledger_leaves ORDER BY idx');
    for (const row of rows.slice(0, before.size)) tree.append([row.leaf_hash]);
    for (const e of events) tree.append([auditLeafHash(e)]);
    expect(rootFromFrontier(head.frontier, head.size).equals(tree.root())).toBe(true);
    await cutCheckpoint(t.db, identity);
    expect(await checkIntegrity(t.db, identity.signer.publicKey)).toMatchObject({ ok: true, size: head.size });
  });

  it('grows the batch back after ten batches in a row go through', async () => {
    const drainer = backlogDrainer(failingOverSize(t.db, 64), { maxBatches: 1 });
    await recordEvents(t.db, orgId, 1, 'grow-0');
    for (let failures = 0; drainer.batchLimit() > 64; failures++) {
      expect(failures).toBeLessThan(20);
      await drainer.drain().catch(() => undefined);
    }
    const shrunk = drainer.batchLimit();
    for (let i = 0; i < 10; i++) {
      await recordEvents(t.db, orgId, shrunk, `grow-${i + 1}`);
      expect(drainer.batchLimit()).toBe(shrunk);
      expect((await drainer.drain()).appended).toBe(shrunk);
    }
    expect(drainer.batchLimit()).toBe(shrunk * 2);
  });
});
