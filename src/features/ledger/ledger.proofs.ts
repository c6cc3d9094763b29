// Inclusion and consistency proofs, built from stored perfect-subtree hashes: the merkle
// planner names the O(log n) nodes a proof needs, one query fetches them, the plan folds
// them into the RFC 9162 path. Proofs are only served for sizes up to the latest signed
// checkpoint, so a client can always check them against a root it holds a signature for.
import type { Queryable } from '../../platform/db/index.js';
import { AppError, BadRequestError, ServiceUnavailableError } from '../../platform/errors.js';
import { fetchLeafAndNodes, fetchNodes, latestCheckpoint, type CheckpointRow } from './ledger.queries.js';
import { consistencyProofPlan, inclusionProofPlan } from './merkle/index.js';

export interface InclusionProof {
  index: number;
  size: number;
  leaf_hash: Buffer;
  path: Buffer[];
}

export interface ConsistencyProof {
  old_size: number;
  new_size: number;
  path: Buffer[];
}

function damaged(what: string): AppError {
  return new AppError(500, 'ledger_damaged', 'Ledger storage is damaged', `${what}; run GET /api/v1/ledger/integrity.`);
}

export async function requireLatestCheckpoint(db: Queryable): Promise<CheckpointRow> {
  const latest = await latestCheckpoint(db);
  // Only before the checkpointer's first tick on a brand-new instance.
  if (!latest)
    throw new ServiceUnavailableError('The ledger has no signed checkpoint yet; retry in a few seconds.', 'no_checkpoint');
  return latest;
}

function checkSize(name: string, size: number, latest: CheckpointRow): void {
  if (size > latest.size) {
    throw new BadRequestError(
      `${name} ${size} is beyond the latest checkpoint (size ${latest.size}); proofs are served for checkpointed sizes only.`,
      'size_beyond_checkpoint',
      { latest_checkpoint_size: latest.size },
    );
  }
}

/**
 * Remembers the largest checkpoint size seen. Checkpoints only grow, so a requested size
 * at or below it is known to be checkpointed without asking the database: a proof for an
 * explicit size then costs one query. Fed by the `ledger.checkpoint` bus event and by
 * every lookup of the latest checkpoint; a missed event only costs that lookup.
 */
export class CheckpointSizes {
  private known = 0;
  note(size: number): void {
    if (size > this.known) this.known = size;
  }
  covers(size: number): boolean {
    return size <= this.known;
  }
}

/** The tree size to prove against: `size` if checkpointed, default the latest checkpoint. */
async function treeSizeFor(
  db: Queryable,
  size: number | undefined,
  sizes: CheckpointSizes | undefined,
  name: string,
): Promise<number> {
  if (size !== undefined && sizes?.covers(size)) return size;
  const latest = await requireLatestCheckpoint(db);
  sizes?.note(latest.size);
  const treeSize = size ?? latest.size;
  checkSize(name, treeSize, latest);
  return treeSize;
}

/** Inclusion proof for leaf `index` in the tree of `size` leaves (default: latest checkpoint). */
export async function inclusionProof(
  db: Queryable,
  index: number,
  size?: number,
  sizes?: CheckpointSizes,
): Promise<InclusionProof> {
  const treeSize = await treeSizeFor(db, size, sizes, 'size');
  if (index >= treeSize) {
    throw new BadRequestError(`index ${index} is not below the tree size ${treeSize}.`, 'index_out_of_range', {
      size: treeSize,
    });
  }
  const plan = inclusionProofPlan(index, treeSize);
  const { leafHash, nodes } = await fetchLeafAndNodes(db, index, plan.ids);
  if (!leafHash) throw damaged(`leaf ${index} is missing`);
  try {
    return { index, size: treeSize, leaf_hash: leafHash, path: plan.assemble(nodes) };
  } catch (error) {
    throw damaged((error as Error).message);
  }
}

/** Consistency proof from `oldSize` to `newSize` (default: latest checkpoint). */
export async function consistencyProof(
  db: Queryable,
  oldSize: number,
  newSize?: number,
  sizes?: CheckpointSizes,
): Promise<ConsistencyProof> {
  const to = await treeSizeFor(db, newSize, sizes, 'new_size');
  if (oldSize > to) {
    throw new BadRequestError(`old_size ${oldSize} is larger than new_size ${to}.`, 'sizes_out_of_order');
  }
  const plan = consistencyProofPlan(oldSize, to);
  const nodes = await fetchNodes(db, plan.ids);
  try {
    return { old_size: oldSize, new_size: to, path: plan.assemble(nodes) };
  } catch (error) {
    throw damaged((error as Error).message);
  }
}
