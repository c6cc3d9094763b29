// Appends queued leaves to the log. One transaction per batch: lock the head, move up to
// `limit` queue rows into ledger_leaves (fixing their order), insert every perfect node
// the batch completes, move the head. A crash anywhere leaves all of it or none of it,
// and the queue rows stay queued until the batch that appends them commits.
import { setImmediate } from 'node:timers/promises';
import type { Db, Queryable } from '../../platform/db/index.js';
import { leafHashOfContent, storedAuditLeafHash } from './ledger.content.js';
import { queuedLeavesWithoutHash } from './ledger.leaves.queries.js';
import { insertNodes, lockHead, moveQueuedLeaves, updateHead } from './ledger.queries.js';
import { newNodesForAppend } from './merkle/index.js';

/** Leaves per transaction: large enough to amortize round trips, small enough to stay short. */
export const SEQUENCE_BATCH = 5_000;
/** Leaves hashed between two yields to the event loop (about 3 ms of work). */
const HASH_SLICE = 250;

export interface SequenceResult {
  appended: number;
  size: number;
}

/**
 * Leaves queued by SQL-recorded audit rows carry no hash yet: hash them from the stored
 * rows (the same content exports and integrity checks rebuild), for the move that appends
 * them. A row deleted before sequencing gets the hash of a tombstone naming it, so the log
 * keeps its place and the integrity check reports it.
 */
async function hashPendingLeaves(tx: Queryable, limit: number): Promise<{ seqs: number[]; hashes: Buffer[] }> {
  const pending = await queuedLeavesWithoutHash(tx, limit);
  const hashes: Buffer[] = [];
  for (const [i, p] of pending.entries()) {
    // A full batch takes tens of milliseconds to hash: in slices, so the requests this
    // process serves meanwhile wait for one slice at most, not for the whole batch.
    if (i > 0 && i % HASH_SLICE === 0) await setImmediate();
    hashes.push(p.audit ? storedAuditLeafHash(p.audit) : leafHashOfContent({ v: 1, kind: 'missing', ref_id: p.ref_id }));
  }
  return { seqs: pending.map((p) => p.seq), hashes };
}

export async function sequenceBatch(db: Db, limit = SEQUENCE_BATCH): Promise<SequenceResult> {
  return db.transaction(async (tx) => {
    const head = await lockHead(tx);
    const computed = await hashPendingLeaves(tx, limit);
    const moved = await moveQueuedLeaves(tx, head.size, limit, computed);
    if (moved.hashes.length === 0) return { appended: 0, size: head.size };
    if (moved.first !== head.size) throw new Error('ledger sequencer: appended indexes are not contiguous with the head');
    const result = newNodesForAppend(head.frontier, head.size, moved.hashes);
    await insertNodes(tx, result.nodes);
    await updateHead(tx, result.size, result.frontier);
    return { appended: moved.hashes.length, size: result.size };
  });
}

/** Sequences until the queue is empty (or `maxBatches` ran); returns leaves appended. */
export function sequenceAll(db: Db, opts: { limit?: number; maxBatches?: number } = {}): Promise<SequenceResult> {
  return backlogDrainer(db, { limit: opts.limit, maxBatches: opts.maxBatches ?? Number.POSITIVE_INFINITY }).drain();
}

/** Successful batches in a row before a shrunken batch size doubles again. */
const GROW_AFTER = 10;

/**
 * Drains the queue in consecutive batches of up to `limit` leaves, at most `maxBatches`
 * per call (the sequencer loop's tick; `sequenceAll`). A batch that fails makes the next
 * one half as large (down to one leaf), and the size grows back toward `limit` after
 * GROW_AFTER successes in a row. A batch that cannot finish at full size (a statement
 * timeout under a backlog or a plan nobody foresaw) would otherwise be retried at that
 * size for ever while the log stood still; once, in the queue bench, the move ran into
 * the 30-s statement timeout on every attempt for minutes.
 */
export function backlogDrainer(
  db: Db,
  { limit: fullLimit = SEQUENCE_BATCH, maxBatches = 20 }: { limit?: number; maxBatches?: number } = {},
): { drain(): Promise<SequenceResult>; batchLimit(): number } {
  let limit = fullLimit;
  let successes = 0;
  return {
    batchLimit: () => limit,
    async drain() {
      let appended = 0;
      let size = 0;
      for (let i = 0; i < maxBatches; i++) {
        const asked = limit;
        let result: SequenceResult;
        try {
          result = await sequenceBatch(db, asked);
        } catch (error) {
          limit = Math.max(1, Math.floor(asked / 2));
          successes = 0;
          throw error;
        }
        appended += result.appended;
        size = result.size;
        successes += 1;
        if (limit < fullLimit && successes >= GROW_AFTER) {
          limit = Math.min(fullLimit, limit * 2);
          successes = 0;
        }
        if (result.appended < asked) break;
      }
      return { appended, size };
    },
  };
}
