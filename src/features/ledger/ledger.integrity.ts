// Server-side tamper check. One pass over the leaves in index order (keyset pages, so
// O(n) time and memory bounded by a page plus the O(log n) frontier), replaying the appends
// the sequencer made and comparing everything it can against what is stored:
//   - indexes contiguous from 0 up to the head, no rows beyond it;
//   - each audit leaf's hash equals the hash of the content rebuilt from its audit row;
//   - every stored perfect node (level 0 = the leaf hashes) equals the recomputed one;
//   - at every checkpointed size the recomputed root equals the checkpoint's root, and
//     the checkpoint's signature verifies with the instance key;
//   - the head's frontier equals the recomputed one.
// The guarantees, and where they stop, are spelled out in README.md.
import type { Queryable } from '../../platform/db/index.js';
import { storedAuditLeafHash } from './ledger.content.js';
import { ledgerOrigin } from './ledger.identity.js';
import { leafPage, type LeafRow } from './ledger.leaves.queries.js';
import { checkpointsAfter, integritySnapshot, nodesInRanges, type CheckpointRow } from './ledger.queries.js';
import {
  EMPTY_ROOT,
  formatVerifierKey,
  hashEquals,
  newNodesForAppend,
  nodeKey,
  parseNote,
  rootFromFrontier,
  verifyCheckpoint,
  type ParsedCheckpoint,
  type StoredNode,
} from './merkle/index.js';

export type IntegrityProblem =
  | 'leaf_missing'
  | 'leaf_inserted'
  | 'record_missing'
  | 'content_mismatch'
  | 'org_mismatch'
  | 'leaf_hash_mismatch'
  | 'node_missing'
  | 'node_mismatch'
  | 'checkpoint_mismatch'
  | 'checkpoint_bad_signature'
  | 'checkpoint_beyond_head'
  | 'head_mismatch';

export interface IntegrityReport {
  ok: boolean;
  /** Leaves in the log (the head's size when the check started). */
  size: number;
  checked_leaves: number;
  checked_checkpoints: number;
  first_bad_index?: number;
  problem?: IntegrityProblem;
  detail?: string;
}

interface Finding {
  index: number;
  problem: IntegrityProblem;
  detail: string;
  /** For findings that only bound the bad leaf: it lies in [index, end). */
  end?: number;
}

export const INTEGRITY_PAGE = 5_000;
const CHECKPOINT_PAGE = 1_000;

/**
 * The checkpoint, if `note` carries a valid signature by `publicKey` under whatever key
 * name it was signed with: the key name is the instance name, which an operator may have
 * changed since; the secret that matters is the key.
 */
function verifiedNote(note: string, publicKey: Buffer): ParsedCheckpoint | null {
  let names: string[];
  try {
    names = [...new Set(parseNote(note).signatures.map((s) => s.keyName))];
  } catch {
    return null;
  }
  for (const name of names) {
    const result = verifyCheckpoint(note, formatVerifierKey(name, publicKey), { expectedOrigin: ledgerOrigin(name) });
    if (result.ok) return result.checkpoint;
  }
  return null;
}

function checkCheckpoint(cp: CheckpointRow, root: Buffer, publicKey: Buffer, goodSize: number): Finding | null {
  const range = `a leaf in [${goodSize}, ${cp.size}) differs from what it signed`;
  const signed = verifiedNote(cp.note, publicKey);
  if (!signed) {
    return {
      index: goodSize,
      end: cp.size,
      problem: 'checkpoint_bad_signature',
      detail: `checkpoint ${cp.size} is not validly signed by this instance's key`,
    };
  }
  if (signed.size !== cp.size || !hashEquals(signed.root, cp.root) || !hashEquals(root, cp.root)) {
    return {
      index: goodSize,
      end: cp.size,
      problem: 'checkpoint_mismatch',
      detail: `the recomputed root at size ${cp.size} is not checkpoint ${cp.size}'s: ${range}`,
    };
  }
  return null;
}

function contentFinding(row: LeafRow): Finding | null {
  if (row.kind !== 'audit') return null;
  const at = `leaf ${row.idx}`;
  if (!row.audit) return { index: row.idx, problem: 'record_missing', detail: `${at}: audit event ${row.ref_id} is missing` };
  if (row.audit.org_id !== row.org_id) {
    return { index: row.idx, problem: 'org_mismatch', detail: `${at}: its organization differs from its audit event's` };
  }
  if (!hashEquals(storedAuditLeafHash(row.audit), row.leaf_hash)) {
    return {
      index: row.idx,
      problem: 'content_mismatch',
      detail: `${at}: audit event ${row.ref_id} does not hash to the leaf hash`,
    };
  }
  return null;
}

function nodeFinding(node: StoredNode, stored: Buffer | undefined): Finding | null {
  const first = node.index * 2 ** node.level;
  const end = first + 2 ** node.level;
  const name = `stored node (${node.level}, ${node.index})`;
  if (node.level === 0) {
    if (!stored) return { index: first, problem: 'node_missing', detail: `leaf ${first}: ${name} is missing` };
    if (!hashEquals(stored, node.hash))
      return { index: first, problem: 'leaf_hash_mismatch', detail: `leaf ${first}: its hash differs from ${name}` };
    return null;
  }
  if (!stored)
    return { index: first, end, problem: 'node_missing', detail: `${name} covering leaves [${first}, ${end}) is missing` };
  if (!hashEquals(stored, node.hash)) {
    return { index: first, end, problem: 'node_mismatch', detail: `${name} differs from the hash of leaves [${first}, ${end})` };
  }
  return null;
}

/**
 * The earliest finding, once bounds are explained away: a bound (a subtree or checkpoint
 * range) that contains a more precise finding (a named leaf, or a smaller subtree) says
 * nothing more, since a changed leaf also changes every node above it.
 */
function firstFinding(findings: Finding[]): Finding | undefined {
  const endOf = (f: Finding) => f.end ?? f.index + 1;
  const explained = (f: Finding) =>
    f.end !== undefined &&
    findings.some((g) => g !== f && g.index >= f.index && endOf(g) <= f.end! && endOf(g) - g.index < f.end! - f.index);
  return findings.filter((f) => !explained(f)).sort((a, b) => a.index - b.index || endOf(a) - endOf(b))[0];
}

/** Levels and index ranges of the perfect nodes completed by appending leaves [from, to). */
function completedRanges(from: number, to: number): { level: number; lo: number; hi: number }[] {
  const ranges = [];
  for (let level = 0, width = 1; width <= to; level++, width *= 2) {
    const lo = Math.floor(from / width);
    const hi = Math.floor(to / width) - 1;
    if (lo <= hi) ranges.push({ level, lo, hi });
  }
  return ranges;
}

export async function checkIntegrity(
  db: Queryable,
  publicKey: Buffer,
  opts: { pageSize?: number } = {},
): Promise<IntegrityReport> {
  const pageSize = opts.pageSize ?? INTEGRITY_PAGE;
  const snap = await integritySnapshot(db);
  const size = snap.size;
  let pos = 0;
  let frontier: Buffer[] = [];
  let goodCheckpoint = 0; // largest checkpointed size verified so far
  let checkedCheckpoints = 0;
  const report = (f: Finding | undefined): IntegrityReport => {
    const base = { size, checked_leaves: pos, checked_checkpoints: checkedCheckpoints };
    return f ? { ok: false, ...base, first_bad_index: f.index, problem: f.problem, detail: f.detail } : { ok: true, ...base };
  };

  // Checkpoints are paged too: one is cut every few seconds for the log's whole life.
  let pending = await checkpointsAfter(db, -1, CHECKPOINT_PAGE);
  const consumeCheckpoint = async () => {
    const done = pending.shift()!;
    checkedCheckpoints++;
    if (pending.length === 0) pending = await checkpointsAfter(db, done.size, CHECKPOINT_PAGE);
  };

  if (pending[0]?.size === 0) {
    const f = checkCheckpoint(pending[0], EMPTY_ROOT, publicKey, 0);
    if (f) return report(f);
    await consumeCheckpoint();
  }

  while (pos < size) {
    const rows = await leafPage(db, { from: pos, to: size, limit: pageSize, contentOrgId: null, allContent: true });
    const findings: Finding[] = [];
    let contiguous = 0;
    while (contiguous < rows.length && rows[contiguous]!.idx === pos + contiguous) contiguous++;
    // The page is bounded by the head, so a short or broken run means a deleted row.
    if (contiguous < pageSize && pos + contiguous < size) {
      findings.push({ index: pos + contiguous, problem: 'leaf_missing', detail: `leaf ${pos + contiguous} is missing` });
    }
    const leaves = rows.slice(0, contiguous);
    for (const row of leaves) {
      const f = contentFinding(row);
      if (f) findings.push(f);
    }

    const pageEnd = pos + leaves.length;
    const stored = await nodesInRanges(db, completedRanges(pos, pageEnd));
    let offset = 0;
    // Replay in segments that end at checkpointed sizes, to compare roots exactly there.
    while (offset < leaves.length) {
      const cp = pending[0];
      const segmentEnd = cp && cp.size > pos && cp.size <= pageEnd ? cp.size : pageEnd;
      const hashes = leaves.slice(offset, offset + (segmentEnd - pos)).map((r) => r.leaf_hash);
      const appended = newNodesForAppend(frontier, pos, hashes);
      for (const node of appended.nodes) {
        const f = nodeFinding(node, stored.get(nodeKey(node.level, node.index)));
        if (f) findings.push(f);
      }
      frontier = appended.frontier;
      offset += hashes.length;
      pos = segmentEnd;
      if (cp && cp.size === pos) {
        // Anything already found before this size explains a root mismatch better.
        if (!findings.some((f) => f.index < pos)) {
          const f = checkCheckpoint(cp, rootFromFrontier(frontier, pos), publicKey, goodCheckpoint);
          if (f) findings.push(f);
          else goodCheckpoint = pos;
        }
        await consumeCheckpoint();
      }
    }
    if (findings.length > 0) return report(firstFinding(findings));
  }

  if (snap.extraIdx !== null) {
    return report({
      index: snap.extraIdx,
      problem: 'leaf_inserted',
      detail: `leaf ${snap.extraIdx} lies beyond the head (size ${size})`,
    });
  }
  if (snap.maxCheckpointSize !== null && snap.maxCheckpointSize > size) {
    return report({
      index: size,
      end: snap.maxCheckpointSize,
      problem: 'checkpoint_beyond_head',
      detail: `checkpoint ${snap.maxCheckpointSize} is larger than the head (size ${size}): leaves were removed`,
    });
  }
  const sameFrontier = snap.frontier.length === frontier.length && snap.frontier.every((h, i) => hashEquals(h, frontier[i]!));
  if (!sameFrontier) {
    return report({ index: size, problem: 'head_mismatch', detail: 'the stored head frontier differs from the recomputed one' });
  }
  return report(undefined);
}
