// The checks that lean on the server's proofs (or on the state file): consistency with
// the checkpoint verified before, locating the first bad leaf, and inclusion proofs.
import { randomInt } from 'node:crypto';
import { verifyConsistency, verifyInclusion, type ParsedCheckpoint } from '../merkle/index.js';
import { VerifyError, decodeHash, decodeHashes, type LedgerClient } from './client.js';
import type { LeafHashLog } from './prefix-roots.js';

const DEFAULT_SAMPLE = 16;
const PROOF_CONCURRENCY = 8;

type ConsistencyFetch = (oldSize: number, newSize: number) => Promise<{ path: string[] }>;

/** The new checkpoint must extend the one verified before; anything else is a fork. */
export async function checkAgainstKnown(
  known: { size: number; root: string },
  cp: ParsedCheckpoint,
  fetchProof: ConsistencyFetch | null,
  log?: LeafHashLog,
): Promise<void> {
  const knownRoot = decodeHash(known.root, 'the state file root');
  const fork = (why: string) =>
    new VerifyError(
      'fork',
      `FORK DETECTED: checkpoint ${cp.size} is not an extension of checkpoint ${known.size} verified before (${why})`,
    );
  if (cp.size < known.size) {
    throw new VerifyError(
      'rollback',
      `the log shows checkpoint ${cp.size}, older than checkpoint ${known.size} verified before (rollback or fork)`,
    );
  }
  if (cp.size === known.size) {
    if (!cp.root.equals(knownRoot)) throw fork('same size, different root');
    return;
  }
  if (log) {
    if (!log.prefixRoot(known.size).equals(knownRoot)) throw fork('its first leaves hash to a different root');
    return;
  }
  const proof = decodeHashes((await fetchProof!(known.size, cp.size)).path, 'consistency proof');
  if (!verifyConsistency(known.size, cp.size, knownRoot, cp.root, proof)) throw fork('the consistency proof fails');
}

/**
 * Binary search for the longest prefix of the export that the signed tree provably
 * starts with (a consistency proof from that prefix's root to the signed root verifies):
 * the leaf right after it is the first bad one. Proofs only ever verify for a true prefix,
 * so a lying server can only make the answer earlier, never hide a bad leaf.
 */
export async function locateFirstBadLeaf(client: LedgerClient, log: LeafHashLog, cp: ParsedCheckpoint): Promise<number> {
  let good = 0; // the empty prefix is a prefix of everything
  let bad = cp.size;
  while (bad - good > 1) {
    const mid = good + Math.floor((bad - good) / 2);
    const proof = decodeHashes((await client.consistencyProof(mid, cp.size)).path, 'consistency proof');
    if (verifyConsistency(mid, cp.size, log.prefixRoot(mid), cp.root, proof)) good = mid;
    else bad = mid;
  }
  return good;
}

/** Checks the first and last leaf's proofs plus `sample` random ones (or all); returns how many verified. */
export async function checkInclusionProofs(
  client: LedgerClient,
  cp: ParsedCheckpoint,
  log: LeafHashLog | null,
  opts: { all?: boolean; sample?: number },
): Promise<number> {
  if (cp.size === 0) return 0;
  const indexes = new Set<number>([0, cp.size - 1]);
  if (opts.all) for (let i = 0; i < cp.size; i++) indexes.add(i);
  // The first and last leaf, plus `sample` other distinct leaves at random.
  const target = Math.min(cp.size, indexes.size + (opts.sample ?? DEFAULT_SAMPLE));
  while (!opts.all && indexes.size < target) indexes.add(randomInt(0, Math.min(cp.size, 2 ** 48 - 1)));
  const queue = [...indexes].sort((a, b) => a - b);
  const failed: number[] = [];
  let verified = 0;
  let next = 0;
  const worker = async () => {
    for (let index = queue[next++]; index !== undefined; index = queue[next++]) {
      const proof = await client.inclusionProof(index, cp.size);
      // With the export, the leaf is the one downloaded; without it, the server's own.
      const leaf = log ? log.leaf(index) : decodeHash(proof.leaf_hash, `leaf ${index}'s hash`, index);
      if (verifyInclusion(leaf, index, cp.size, decodeHashes(proof.path, 'inclusion proof'), cp.root)) verified++;
      else failed.push(index);
    }
  };
  await Promise.all(Array.from({ length: PROOF_CONCURRENCY }, worker));
  if (failed.length > 0) {
    const index = Math.min(...failed);
    throw new VerifyError(
      'inclusion_failed',
      `the server's inclusion proof for leaf ${index} does not verify against the signed root`,
      index,
    );
  }
  return verified;
}
