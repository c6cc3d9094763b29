// Tampering with the stored log, one way at a time, and checking that checkIntegrity finds
// it and names the first bad leaf. Each case edits rows inside a transaction that is
// rolled back afterwards, so every case starts from the same honest log.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../../../test/helpers/db.js';
import { createOrg, flushLedger, recordEvents, testIdentity } from '../../../test/ledger/helpers.js';
import type { Queryable } from '../../platform/db/index.js';
import { leafContentOfAuditRow, leafHashOfContent } from './ledger.content.js';
import type { LedgerIdentity } from './ledger.identity.js';
import { checkIntegrity, type IntegrityReport } from './ledger.integrity.js';
import { leafPage } from './ledger.leaves.queries.js';
import { newNodesForAppend } from './merkle/index.js';

let t: TestDb;
let identity: LedgerIdentity;
const SIZE = 50;
const CHECKPOINTS = [10, 23, 50];

beforeAll(async () => {
  t = await createTestDb();
  identity = await testIdentity(t.db);
  const orgId = await createOrg(t.db);
  await flushLedger(t.db, identity); // size 0
  let done = 0;
  for (const size of CHECKPOINTS) {
    await recordEvents(t.db, orgId, size - done, `cp${size}`);
    await flushLedger(t.db, identity);
    done = size;
  }
});
afterAll(async () => t.drop());

const ROLLBACK = new Error('rollback');

/** Runs `tamper` and the check in one transaction, then rolls the tampering back. */
async function checkAfter(tamper: (tx: Queryable) => Promise<void>, pageSize = 8): Promise<IntegrityReport> {
  let report: IntegrityReport | undefined;
  await t.db
    .transaction(async (tx) => {
      await tamper(tx);
      report = await checkIntegrity(tx, identity.signer.publicKey, { pageSize });
      throw ROLLBACK;
    })
    .catch((error: unknown) => {
      if (error !== ROLLBACK) throw error;
    });
  return report!;
}

const junk = Buffer.alloc(32, 0xab);
const leafRef = async (tx: Queryable, idx: number) =>
  (await tx.query<{ ref_id: string }>('SELECT ref_id FROM ledger_leaves WHERE idx = $1', [idx])).rows[0]!.ref_id;

/** Rewrites every stored node and the head from the current leaves, as a careful tamperer would. */
async function rebuildTree(tx: Queryable, fromLevel = 0): Promise<void> {
  const leaves = await leafPage(tx, { from: 0, to: SIZE, limit: SIZE, contentOrgId: null, allContent: false });
  const { nodes, frontier } = newNodesForAppend(
    [],
    0,
    leaves.map((l) => l.leaf_hash),
  );
  for (const n of nodes.filter((x) => x.level >= fromLevel)) {
    await tx.query('UPDATE ledger_nodes SET hash = $3 WHERE level = $1 AND idx = $2', [n.level, n.index, n.hash]);
  }
  await tx.query('UPDATE ledger_head SET frontier = $1', [Buffer.concat(frontier)]);
}

/** Changes an audit event's payload and makes its leaf hash (and level-0 node) agree. */
async function rewriteEvent(tx: Queryable, idx: number): Promise<void> {
  const ref = await leafRef(tx, idx);
  await tx.query(`UPDATE audit_events SET payload = '{"after":{"forged":true}}' WHERE id = $1`, [ref]);
  const [row] = await leafPage(tx, { from: idx, to: idx + 1, limit: 1, contentOrgId: null, allContent: true });
  const hash = leafHashOfContent(leafContentOfAuditRow(row!.audit!));
  await tx.query('UPDATE ledger_leaves SET leaf_hash = $2 WHERE idx = $1', [idx, hash]);
  await tx.query('UPDATE ledger_nodes SET hash = $2 WHERE level = 0 AND idx = $1', [idx, hash]);
}

describe('checkIntegrity', () => {
  it('passes an honest log, at any page size', async () => {
    for (const pageSize of [1, 3, 8, 1000]) {
      expect(await checkAfter(async () => {}, pageSize)).toEqual({
        ok: true,
        size: SIZE,
        checked_leaves: SIZE,
        checked_checkpoints: 4,
      });
    }
  });

  it.each([
    [
      'a changed leaf hash',
      17,
      'content_mismatch',
      async (tx: Queryable) => {
        await tx.query('UPDATE ledger_leaves SET leaf_hash = $1 WHERE idx = 17', [junk]);
      },
    ],
    [
      'a changed leaf hash and level-0 node',
      17,
      'content_mismatch',
      async (tx: Queryable) => {
        await tx.query('UPDATE ledger_leaves SET leaf_hash = $1 WHERE idx = 17', [junk]);
        await tx.query('UPDATE ledger_nodes SET hash = $1 WHERE level = 0 AND idx = 17', [junk]);
      },
    ],
    [
      'a changed leaf hash with the whole tree rebuilt to match',
      17,
      'content_mismatch',
      async (tx: Queryable) => {
        await tx.query('UPDATE ledger_leaves SET leaf_hash = $1 WHERE idx = 17', [junk]);
        await rebuildTree(tx);
      },
    ],
    [
      'a deleted leaf',
      30,
      'leaf_missing',
      async (tx: Queryable) => {
        await tx.query('DELETE FROM ledger_leaves WHERE idx = 30');
      },
    ],
    [
      'a deleted last leaf',
      49,
      'leaf_missing',
      async (tx: Queryable) => {
        await tx.query('DELETE FROM ledger_leaves WHERE idx = 49');
      },
    ],
    [
      'a deleted first leaf',
      0,
      'leaf_missing',
      async (tx: Queryable) => {
        await tx.query('DELETE FROM ledger_leaves WHERE idx = 0');
      },
    ],
    [
      'two swapped leaf hashes',
      12,
      'content_mismatch',
      async (tx: Queryable) => {
        await tx.query(`UPDATE ledger_leaves SET leaf_hash = CASE idx WHEN 12 THEN (SELECT leaf_hash FROM ledger_leaves WHERE idx = 40)
                      ELSE (SELECT leaf_hash FROM ledger_leaves WHERE idx = 12) END WHERE idx IN (12, 40)`);
      },
    ],
    [
      'two swapped records (ref_id)',
      12,
      'content_mismatch',
      async (tx: Queryable) => {
        await tx.query(`UPDATE ledger_leaves SET ref_id = CASE idx WHEN 12 THEN (SELECT ref_id FROM ledger_leaves WHERE idx = 40)
                      ELSE (SELECT ref_id FROM ledger_leaves WHERE idx = 12) END WHERE idx IN (12, 40)`);
      },
    ],
    [
      'two whole leaves swapped (renumbered)',
      12,
      'leaf_hash_mismatch',
      async (tx: Queryable) => {
        await tx.query('UPDATE ledger_leaves SET idx = 1000 WHERE idx = 12');
        await tx.query('UPDATE ledger_leaves SET idx = 12 WHERE idx = 40');
        await tx.query('UPDATE ledger_leaves SET idx = 40 WHERE idx = 1000');
      },
    ],
    [
      'an inserted leaf beyond the head',
      50,
      'leaf_inserted',
      async (tx: Queryable) => {
        await tx.query(`INSERT INTO ledger_leaves (idx, leaf_hash, org_id, kind, ref_id)
                      SELECT 50, leaf_hash, org_id, kind, ref_id FROM ledger_leaves WHERE idx = 3`);
      },
    ],
    [
      'a leaf inserted in the middle (later ones shifted)',
      20,
      'leaf_hash_mismatch',
      async (tx: Queryable) => {
        await tx.query('UPDATE ledger_leaves SET idx = idx + 1000 WHERE idx >= 20');
        await tx.query('UPDATE ledger_leaves SET idx = idx - 999 WHERE idx >= 1000');
        await tx.query(`INSERT INTO ledger_leaves (idx, leaf_hash, org_id, kind, ref_id)
                      SELECT 20, leaf_hash, org_id, kind, ref_id FROM ledger_leaves WHERE idx = 3`);
      },
    ],
    [
      'an edited audit payload',
      33,
      'content_mismatch',
      async (tx: Queryable) => {
        await tx.query(`UPDATE audit_events SET payload = payload || '{"x":1}' WHERE id = $1`, [await leafRef(tx, 33)]);
      },
    ],
    [
      'an edited audit timestamp',
      2,
      'content_mismatch',
      async (tx: Queryable) => {
        await tx.query(`UPDATE audit_events SET occurred_at = occurred_at + interval '1 ms' WHERE id = $1`, [
          await leafRef(tx, 2),
        ]);
      },
    ],
    [
      'a deleted audit event',
      5,
      'record_missing',
      async (tx: Queryable) => {
        await tx.query('DELETE FROM audit_events WHERE id = $1', [await leafRef(tx, 5)]);
      },
    ],
    [
      'a leaf moved to another organization',
      8,
      'org_mismatch',
      async (tx: Queryable) => {
        await tx.query('UPDATE ledger_leaves SET org_id = gen_random_uuid() WHERE idx = 8');
      },
    ],
    [
      'a missing level-0 node',
      44,
      'node_missing',
      async (tx: Queryable) => {
        await tx.query('DELETE FROM ledger_nodes WHERE level = 0 AND idx = 44');
      },
    ],
  ])('finds %s and names leaf %i', async (_name, index, problem, tamper) => {
    const report = await checkAfter(tamper);
    expect(report).toMatchObject({ ok: false, first_bad_index: index, problem });
  });

  it('names the subtree of an altered interior node', async () => {
    const report = await checkAfter(async (tx) => {
      await tx.query('UPDATE ledger_nodes SET hash = $1 WHERE level = 2 AND idx = 3', [junk]); // leaves [12, 16)
    });
    expect(report).toMatchObject({ ok: false, first_bad_index: 12, problem: 'node_mismatch' });
  });

  it('bounds a fully consistent rewrite of one event by its smallest intact subtree', async () => {
    // Record, leaf hash and level-0 node agree; the level-1 node above leaf 27 does not.
    const report = await checkAfter((tx) => rewriteEvent(tx, 27));
    expect(report).toMatchObject({ ok: false, first_bad_index: 26, problem: 'node_mismatch' });
  });

  it('catches a rewrite of the whole stored tree by the signed checkpoints', async () => {
    // Nothing stored disagrees any more; only the signatures the tamperer cannot forge do.
    const report = await checkAfter(async (tx) => {
      await rewriteEvent(tx, 27);
      await rebuildTree(tx);
    });
    expect(report).toMatchObject({ ok: false, first_bad_index: 23, problem: 'checkpoint_mismatch' });
    expect(report.detail).toContain('[23, 50)');
  });

  it('catches a re-rooted checkpoint whose signature no longer matches', async () => {
    const report = await checkAfter(async (tx) => {
      await tx.query(`UPDATE ledger_checkpoints SET note = replace(note, '\n23\n', '\n24\n') WHERE size = 23`);
    });
    expect(report).toMatchObject({ ok: false, first_bad_index: 10, problem: 'checkpoint_bad_signature' });
  });

  it('catches a truncated log (head moved back below a checkpoint)', async () => {
    const report = await checkAfter(async (tx) => {
      await tx.query('DELETE FROM ledger_leaves WHERE idx >= 45');
      await tx.query('DELETE FROM ledger_nodes WHERE (idx + 1) * (1::bigint << level) > 45');
      await tx.query('UPDATE ledger_head SET size = 45');
      const leaves = await leafPage(tx, { from: 0, to: 45, limit: 45, contentOrgId: null, allContent: false });
      const { frontier } = newNodesForAppend(
        [],
        0,
        leaves.map((l) => l.leaf_hash),
      );
      await tx.query('UPDATE ledger_head SET frontier = $1', [Buffer.concat(frontier)]);
    });
    expect(report).toMatchObject({ ok: false, first_bad_index: 45, problem: 'checkpoint_beyond_head' });
  });

  it('catches a damaged head frontier', async () => {
    const report = await checkAfter(async (tx) => {
      await tx.query(`UPDATE ledger_head SET frontier = set_byte(frontier, 0, get_byte(frontier, 0) # 255)`);
    });
    expect(report).toMatchObject({ ok: false, problem: 'head_mismatch' });
  });
});
