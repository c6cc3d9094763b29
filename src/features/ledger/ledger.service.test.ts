import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../../../test/helpers/db.js';
import { createOrg, flushLedger, recordEvents, testIdentity } from '../../../test/ledger/helpers.js';
import { cutCheckpoint } from './ledger.checkpoints.js';
import { auditEventFromRow, leafHashOfContent } from './ledger.content.js';
import type { LedgerIdentity } from './ledger.identity.js';
import { checkIntegrity } from './ledger.integrity.js';
import { consistencyProof, inclusionProof } from './ledger.proofs.js';
import { leafPage } from './ledger.leaves.queries.js';
import { checkpointAtSize, latestCheckpoint, lockHead, moveQueuedLeaves, readHead } from './ledger.queries.js';
import { sequenceAll, sequenceBatch } from './ledger.sequencer.js';
import { auditLeafHash } from '../audit/audit.record.js';
import {
  EMPTY_ROOT,
  MemoryTree,
  rootFromFrontier,
  verifyCheckpoint,
  verifyConsistency,
  verifyInclusion,
} from './merkle/index.js';

let t: TestDb;
let identity: LedgerIdentity;
let orgId: string;

beforeAll(async () => {
  t = await createTestDb();
  identity = await testIdentity(t.db);
  orgId = await createOrg(t.db);
});
afterAll(async () => t.drop());

describe('ledger sequencing, checkpoints and proofs', () => {
  const tree = new MemoryTree(); // the oracle: every leaf we expect, in order
  const checkpoints: { size: number; root: Buffer }[] = [];

  it('starts empty and cuts a size-0 checkpoint over the empty root', async () => {
    expect(await latestCheckpoint(t.db)).toBeUndefined();
    const cp = await cutCheckpoint(t.db, identity);
    expect(cp).toMatchObject({ size: 0 });
    expect(cp!.root.equals(EMPTY_ROOT)).toBe(true);
    expect(await cutCheckpoint(t.db, identity)).toBeNull(); // nothing new: no second cut
    checkpoints.push({ size: 0, root: EMPTY_ROOT });
  });

  it('appends queued leaves in queue order across several batches and checkpoints', async () => {
    for (const n of [1, 2, 5, 13, 64, 3]) {
      const events = await recordEvents(t.db, orgId, n, `b${n}`);
      for (const e of events) tree.append([auditLeafHash(e)]);
      // Small batches force the frontier to carry over between transactions.
      const r = await sequenceAll(t.db, { limit: 7 });
      expect(r.appended).toBe(n);
      const cp = await cutCheckpoint(t.db, identity);
      expect(cp?.size).toBe(tree.size);
      expect(cp!.root.equals(tree.root())).toBe(true);
      checkpoints.push({ size: cp!.size, root: cp!.root });
    }
    const head = await readHead(t.db);
    expect(head.size).toBe(88);
    expect(rootFromFrontier(head.frontier, head.size).equals(tree.root())).toBe(true);
    expect((await t.db.query('SELECT 1 FROM ledger_queue')).rowCount).toBe(0);
  });

  it('signs checkpoints verifiably with the instance key and origin', async () => {
    const cp = (await checkpointAtSize(t.db, 88))!;
    const result = verifyCheckpoint(cp.note, identity.signer.verifierKey, { expectedOrigin: 'test.local/ledger' });
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.checkpoint.size).toBe(88);
      expect(result.checkpoint.root.equals(cp.root)).toBe(true);
    }
    // A different key does not verify it.
    const other = await testIdentity(t.db, 'other.local');
    expect(verifyCheckpoint(cp.note, other.signer.verifierKey).ok).toBe(false);
  });

  it('keeps the same signing key across restarts (seed stored once)', async () => {
    const again = await testIdentity(t.db);
    expect(again.signer.verifierKey).toBe(identity.signer.verifierKey);
  });

  it('serves inclusion proofs that verify against every signed checkpoint', async () => {
    for (const { size, root } of checkpoints.filter((c) => c.size > 0)) {
      for (const index of new Set([0, 1, size >> 1, size - 2, size - 1].filter((i) => i >= 0 && i < size))) {
        const proof = await inclusionProof(t.db, index, size);
        expect(proof.leaf_hash.equals(tree.getNode(0, index)!)).toBe(true);
        expect(proof.path.map((h) => h.toString('hex'))).toEqual(tree.inclusionProof(index, size).map((h) => h.toString('hex')));
        expect(verifyInclusion(proof.leaf_hash, index, size, proof.path, root)).toBe(true);
      }
    }
  });

  it('serves consistency proofs between every pair of checkpoints', async () => {
    for (const a of checkpoints) {
      for (const b of checkpoints.filter((c) => c.size >= a.size)) {
        const proof = await consistencyProof(t.db, a.size, b.size);
        expect(verifyConsistency(a.size, b.size, a.root, b.root, proof.path), `${a.size} -> ${b.size}`).toBe(true);
      }
    }
  });

  it('defaults proofs to the latest checkpoint and refuses sizes beyond it', async () => {
    await recordEvents(t.db, orgId, 2, 'late');
    await sequenceAll(t.db); // sequenced, not yet checkpointed
    expect((await readHead(t.db)).size).toBe(90);
    expect((await inclusionProof(t.db, 3)).size).toBe(88);
    await expect(inclusionProof(t.db, 89, 90)).rejects.toMatchObject({ status: 400, code: 'size_beyond_checkpoint' });
    await expect(inclusionProof(t.db, 88, 88)).rejects.toMatchObject({ status: 400, code: 'index_out_of_range' });
    await expect(consistencyProof(t.db, 10, 5)).rejects.toMatchObject({ status: 400, code: 'sizes_out_of_order' });
    await expect(consistencyProof(t.db, 10, 90)).rejects.toMatchObject({ status: 400, code: 'size_beyond_checkpoint' });
    const cp = await flushLedger(t.db, identity);
    expect(cp?.size).toBe(90);
  });

  it('rebuilds each leaf from its audit row to exactly the stored leaf hash', async () => {
    const rows = await leafPage(t.db, { from: 0, to: 90, limit: 100, contentOrgId: null, allContent: true });
    expect(rows).toHaveLength(90);
    for (const row of rows) {
      expect(row.audit).not.toBeNull();
      expect(leafHashOfContent({ v: 1, kind: 'audit', ...auditEventFromRow(row.audit!) }).equals(row.leaf_hash)).toBe(true);
    }
  });

  it('passes the integrity check on an untouched log', async () => {
    const report = await checkIntegrity(t.db, identity.signer.publicKey, { pageSize: 16 });
    expect(report).toMatchObject({ ok: true, size: 90, checked_leaves: 90, checked_checkpoints: checkpoints.length + 1 });
  });

  it('lets two concurrent sequencers append without losing or duplicating a leaf', async () => {
    await recordEvents(t.db, orgId, 40, 'race');
    const results = await Promise.all([sequenceBatch(t.db, 9), sequenceBatch(t.db, 9), sequenceAll(t.db, { limit: 5 })]);
    await sequenceAll(t.db);
    expect(results.reduce((n, r) => n + r.appended, 0)).toBeLessThanOrEqual(40);
    await flushLedger(t.db, identity);
    const report = await checkIntegrity(t.db, identity.signer.publicKey);
    expect(report).toMatchObject({ ok: true, size: 130 });
  });

  it('leaves a row committed without its hash after the hashing step for the next batch, never failing the batch', async () => {
    // The race under load: a writer drew its seq before others but commits its SQL-recorded
    // audit row (no hash yet) only after the sequencer's transaction hashed the pending ones.
    const [hashed] = await recordEvents(t.db, orgId, 1, 'late');
    const { rows } = await t.db.query<{ seq: string }>('SELECT seq FROM ledger_queue WHERE ref_id = $1', [hashed!.id]);
    const late = await t.db.query<{ id: string }>(
      `INSERT INTO audit_events (id, org_id, occurred_at, actor_type, actor_id, actor_label, action, resource_type, resource_id, payload)
       VALUES (gen_random_uuid(), $1, date_trunc('milliseconds', now()), 'system', 'ledger-test', 'ledger-test', 'thing.recorded_by_sql', 'thing', 'late', '{}')
       RETURNING id`,
      [orgId],
    );
    await t.db.query("INSERT INTO ledger_queue (seq, org_id, kind, ref_id) VALUES ($1, $2, 'audit', $3)", [
      Number(rows[0]!.seq) - 1,
      orgId,
      late.rows[0]!.id,
    ]);
    const moved = await t.db
      .transaction(async (tx) => {
        const head = await lockHead(tx);
        const leaves = await moveQueuedLeaves(tx, head.size, 10);
        throw Object.assign(new Error('roll back'), { leaves });
      })
      .catch((error: { leaves?: { first: number; hashes: Buffer[] } }) => error.leaves);
    expect(moved?.hashes.map((h) => h.toString('hex'))).toEqual([auditLeafHash(hashed!).toString('hex')]);

    expect((await sequenceAll(t.db)).appended).toBe(2);
    await flushLedger(t.db, identity);
    expect(await checkIntegrity(t.db, identity.signer.publicKey)).toMatchObject({ ok: true, size: 132 });
  });

  it('lets two concurrent sequencers hash and append SQL-recorded rows each exactly once', async () => {
    // Rows queued without a hash are read without row locks: the head lock alone keeps two
    // sequencers from hashing and appending the same rows.
    await t.db.query(
      `WITH a AS (
         INSERT INTO audit_events (id, org_id, occurred_at, actor_type, actor_id, actor_label, action, resource_type, resource_id, payload)
         SELECT gen_random_uuid(), $1, date_trunc('milliseconds', now()), 'system', 'ledger-test', 'ledger-test',
                'thing.recorded_by_sql', 'thing', 'sql-race-' || i, '{}'
           FROM generate_series(1, 40) AS i
         RETURNING id, org_id)
       INSERT INTO ledger_queue (org_id, kind, ref_id) SELECT org_id, 'audit', id FROM a`,
      [orgId],
    );
    const results = await Promise.all([sequenceBatch(t.db, 9), sequenceBatch(t.db, 9), sequenceAll(t.db, { limit: 5 })]);
    await sequenceAll(t.db);
    expect(results.reduce((n, r) => n + r.appended, 0)).toBeLessThanOrEqual(40);
    const { rows } = await t.db.query<{ leaves: number; refs: number }>(
      "SELECT count(*)::int AS leaves, count(DISTINCT ref_id)::int AS refs FROM ledger_leaves WHERE ref_id IN (SELECT id FROM audit_events WHERE resource_id LIKE 'sql-race-%')",
    );
    expect(rows[0]).toEqual({ leaves: 40, refs: 40 });
    await flushLedger(t.db, identity);
    expect(await checkIntegrity(t.db, identity.signer.publicKey)).toMatchObject({ ok: true, size: 172 });
  });
});
