import { EMPTY_ROOT, nodeHash } from './hash.js';
import {
  consistencyProofPlan,
  frontierNodeIds,
  inclusionProofPlan,
  newNodesForAppend,
  nodeKey,
  rootFromFrontier,
  splitPoint,
  type NodeId,
  type StoredNode,
} from './tree.js';

// Straight transcriptions of RFC 6962 §2.1 (MTH, PATH, PROOF/SUBPROOF).
// Deliberately naive (they rehash whole subtrees) so they share no logic
// with the planner they are used to cross-check.

function leafAt(leafHashes: readonly Buffer[], i: number): Buffer {
  const h = leafHashes[i];
  if (h === undefined) throw new RangeError(`no leaf ${i}`);
  return h;
}

/** MTH(D[a:b]) by the RFC 6962 recursion over leaf hashes. */
export function rootOfRange(leafHashes: readonly Buffer[], a: number, b: number): Buffer {
  const n = b - a;
  if (n < 0) throw new RangeError(`bad range [${a}, ${b})`);
  if (n === 0) return EMPTY_ROOT;
  if (n === 1) return leafAt(leafHashes, a);
  const k = splitPoint(n);
  return nodeHash(rootOfRange(leafHashes, a, a + k), rootOfRange(leafHashes, a + k, b));
}

function path(leafHashes: readonly Buffer[], m: number, a: number, b: number): Buffer[] {
  const n = b - a;
  if (n <= 1) return [];
  const k = splitPoint(n);
  if (m < k) return [...path(leafHashes, m, a, a + k), rootOfRange(leafHashes, a + k, b)];
  return [...path(leafHashes, m - k, a + k, b), rootOfRange(leafHashes, a, a + k)];
}

/** PATH(index, D[0:size]). */
export function refInclusionProof(leafHashes: readonly Buffer[], index: number, size: number): Buffer[] {
  if (index < 0 || index >= size || size > leafHashes.length) throw new RangeError('bad index/size');
  return path(leafHashes, index, 0, size);
}

function subproof(leafHashes: readonly Buffer[], m: number, a: number, b: number, complete: boolean): Buffer[] {
  const n = b - a;
  if (m === n) return complete ? [] : [rootOfRange(leafHashes, a, b)];
  const k = splitPoint(n);
  if (m <= k) return [...subproof(leafHashes, m, a, a + k, complete), rootOfRange(leafHashes, a + k, b)];
  return [...subproof(leafHashes, m - k, a + k, b, false), rootOfRange(leafHashes, a, a + k)];
}

/** PROOF(oldSize, D[0:newSize]); empty for oldSize 0 (see README for that policy). */
export function refConsistencyProof(leafHashes: readonly Buffer[], oldSize: number, newSize: number): Buffer[] {
  if (oldSize < 0 || oldSize > newSize || newSize > leafHashes.length) throw new RangeError('bad sizes');
  if (oldSize === 0) return [];
  return subproof(leafHashes, oldSize, 0, newSize, true);
}

/**
 * In-memory stand-in for the node table: stores exactly what the database
 * would (perfect nodes by (level, index)) and answers proofs only through
 * the planner, so tests exercise the same path as the server.
 */
export class MemoryTree {
  private readonly levels: Buffer[][] = [];
  private frontier: Buffer[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Appends leaf hashes and returns the nodes a database would insert. */
  append(leafHashes: readonly Buffer[]): StoredNode[] {
    const result = newNodesForAppend(this.frontier, this.count, leafHashes);
    for (const node of result.nodes) {
      let level = this.levels[node.level];
      if (level === undefined) {
        level = [];
        this.levels[node.level] = level;
      }
      if (level.length !== node.index) throw new Error(`node ${nodeKey(node.level, node.index)} out of order`);
      level.push(node.hash);
    }
    this.frontier = result.frontier;
    this.count = result.size;
    return result.nodes;
  }

  getNode(level: number, index: number): Buffer | undefined {
    return this.levels[level]?.[index];
  }

  /** Like a `WHERE (level, index) IN (...)` lookup, but loud about gaps. */
  getNodes(ids: readonly NodeId[]): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    for (const id of ids) {
      const h = this.getNode(id.level, id.index);
      if (h === undefined) throw new Error(`node ${nodeKey(id.level, id.index)} not stored`);
      out.set(nodeKey(id.level, id.index), h);
    }
    return out;
  }

  /** Root at any historical size: perfect nodes are immutable, so old frontiers stay stored. */
  root(size: number = this.count): Buffer {
    if (size > this.count) throw new RangeError(`size ${size} beyond tree size ${this.count}`);
    const ids = frontierNodeIds(size);
    const nodes = this.getNodes(ids);
    return rootFromFrontier(
      ids.map((id) => nodes.get(nodeKey(id.level, id.index))!),
      size,
    );
  }

  inclusionProof(index: number, size: number = this.count): Buffer[] {
    if (size > this.count) throw new RangeError(`size ${size} beyond tree size ${this.count}`);
    const plan = inclusionProofPlan(index, size);
    return plan.assemble(this.getNodes(plan.ids));
  }

  consistencyProof(oldSize: number, newSize: number = this.count): Buffer[] {
    if (newSize > this.count) throw new RangeError(`size ${newSize} beyond tree size ${this.count}`);
    const plan = consistencyProofPlan(oldSize, newSize);
    return plan.assemble(this.getNodes(plan.ids));
  }
}
