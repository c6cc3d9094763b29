// Signed checkpoints (C2SP tlog-checkpoint). A checkpoint is cut from the head alone (its
// frontier folds to the root), so cutting one never reads the tree. Every cut is kept:
// clients hold old checkpoints and ask for consistency proofs from them.
import type { Queryable } from '../../platform/db/index.js';
import type { LedgerIdentity } from './ledger.identity.js';
import { insertCheckpoint, latestCheckpoint, readHead, type CheckpointRow } from './ledger.queries.js';
import { parseCheckpoint, rootFromFrontier, signCheckpoint } from './merkle/index.js';

/**
 * Signs and stores a checkpoint at the current head when the head grew since the latest
 * one (or when there is none yet: a fresh log gets a size-0 checkpoint over the empty
 * root, so clients always find a signed head). Returns the new checkpoint, or null.
 */
export async function cutCheckpoint(db: Queryable, identity: LedgerIdentity): Promise<CheckpointRow | null> {
  const [head, latest] = await Promise.all([readHead(db), latestCheckpoint(db)]);
  if (latest && latest.size >= head.size) return null;
  const root = rootFromFrontier(head.frontier, head.size);
  const note = signCheckpoint(identity.signer, { origin: identity.origin, size: head.size, root });
  return (await insertCheckpoint(db, { size: head.size, root, note })) ?? null;
}

export interface CheckpointView {
  size: number;
  root: string;
  origin: string;
  note: string;
  created_at: string;
}

export function checkpointView(row: CheckpointRow): CheckpointView {
  return {
    size: row.size,
    root: row.root.toString('base64'),
    origin: parseCheckpoint(row.note).origin,
    note: row.note,
    created_at: row.created_at.toISOString(),
  };
}
