import { HASH_SIZE, EMPTY_ROOT, nodeHash } from './hash.js';

/**
 * Id of a perfect subtree: node (level, index) covers leaves
 * [index * 2^level, (index + 1) * 2^level). Level 0 nodes are leaf hashes.
 * Perfect nodes never change once complete, which is why they are the unit
 * of storage: appends only ever insert rows, never update them.
 */
export interface NodeId {
  level: number;
  index: number;
}

export interface StoredNode extends NodeId {
  hash: Buffer;
}

export interface AppendResult {
  /** Every perfect node completed by the append, leaves included, in creation order. */
  nodes: StoredNode[];
  /** Perfect-subtree roots of [0, size), left to right (largest first). */
  frontier: Buffer[];
  size: number;
}

/**
 * The stored hashes a proof needs, plus how to turn them into the RFC 9162
 * proof path. Each element of `elements` is one proof entry, given as the
 * left-to-right perfect nodes whose right fold is that entry's hash.
 */
export interface ProofPlan {
  ids: NodeId[];
  elements: NodeId[][];
  assemble(hashes: ReadonlyMap<string, Uint8Array>): Buffer[];
}

/** Map key for a node id; also the natural text form for a DB lookup list. */
export function nodeKey(level: number, index: number): string {
  return `${level}:${index}`;
}

function assertSize(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${value}`);
  }
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Largest power of two strictly below n (n >= 2), i.e. the RFC 6962 split
 * point k. Math.log2 gives a guess that is corrected exactly, because 32-bit
 * bit tricks break beyond 2^31 and float log2 can be off by one near powers
 * of two.
 */
export function splitPoint(n: number): number {
  let p = 2 ** Math.floor(Math.log2(n));
  while (p >= n) p /= 2;
  while (p * 2 < n) p *= 2;
  return p;
}

function log2Exact(p: number): number {
  return Math.round(Math.log2(p));
}

/**
 * Perfect nodes whose right fold is MTH(D[start:end]) for an RFC 6962
 * subtree, i.e. a range whose start is aligned to a power of two at least as
 * large as its length (every subtree that appears in a root or proof is). The
 * greedy binary decomposition is then automatically aligned.
 */
export function rangeNodeIds(start: number, end: number): NodeId[] {
  assertSize('start', start);
  assertSize('end', end);
  if (end <= start) throw new RangeError(`empty range [${start}, ${end})`);
  const ids: NodeId[] = [];
  let offset = start;
  let remaining = end - start;
  let p = 2 ** Math.floor(Math.log2(remaining));
  while (p > remaining) p /= 2;
  while (p * 2 <= remaining) p *= 2;
  for (; remaining > 0; p /= 2) {
    if (remaining < p) continue;
    if (offset % p !== 0) {
      throw new RangeError(`range [${start}, ${end}) is not an RFC 6962 subtree`);
    }
    ids.push({ level: log2Exact(p), index: offset / p });
    offset += p;
    remaining -= p;
  }
  return ids;
}

/** Ids of the perfect subtrees that make up a tree of `size` leaves, largest first. */
export function frontierNodeIds(size: number): NodeId[] {
  assertSize('size', size);
  return size === 0 ? [] : rangeNodeIds(0, size);
}

/** Right-to-left fold, which is exactly how RFC 6962 pairs the ragged right edge. */
function foldRight(hashes: readonly Uint8Array[]): Buffer {
  const last = hashes[hashes.length - 1];
  if (last === undefined) return EMPTY_ROOT;
  let acc = toBuffer(last);
  for (let i = hashes.length - 2; i >= 0; i--) {
    acc = nodeHash(hashes[i]!, acc);
  }
  return acc;
}

/** RFC 6962 root of a tree of `size` leaves from its frontier. */
export function rootFromFrontier(frontier: readonly Uint8Array[], size: number): Buffer {
  const expected = frontierNodeIds(size).length;
  if (frontier.length !== expected) {
    throw new RangeError(`frontier of size ${size} needs ${expected} hashes, got ${frontier.length}`);
  }
  return foldRight(frontier);
}

/**
 * Appends leaves to a tree known only by its frontier. Amortised O(1) new
 * nodes per leaf (at most 2k + log n in total), so a batch insert of the
 * result stays proportional to the batch.
 */
export function newNodesForAppend(
  frontier: readonly Uint8Array[],
  size: number,
  leafHashes: readonly Uint8Array[],
): AppendResult {
  const ids = frontierNodeIds(size);
  if (frontier.length !== ids.length) {
    throw new RangeError(`frontier of size ${size} needs ${ids.length} hashes, got ${frontier.length}`);
  }
  if (size + leafHashes.length > Number.MAX_SAFE_INTEGER) {
    throw new RangeError('tree size would exceed Number.MAX_SAFE_INTEGER');
  }
  const levels = ids.map((id) => id.level);
  const stack = frontier.map((h) => {
    if (h.length !== HASH_SIZE) throw new RangeError('frontier hash must be 32 bytes');
    return toBuffer(h);
  });
  const nodes: StoredNode[] = [];
  let n = size;
  for (const leaf of leafHashes) {
    if (leaf.length !== HASH_SIZE) throw new RangeError('leaf hash must be 32 bytes');
    let level = 0;
    let index = n;
    let hash = toBuffer(leaf);
    nodes.push({ level, index, hash });
    // Equal-level neighbours on the stack are exactly the siblings this leaf completes.
    while (levels.length > 0 && levels[levels.length - 1] === level) {
      levels.pop();
      hash = nodeHash(stack.pop()!, hash);
      level += 1;
      index = Math.floor(index / 2);
      nodes.push({ level, index, hash });
    }
    levels.push(level);
    stack.push(hash);
    n += 1;
  }
  return { nodes, frontier: stack, size: n };
}

/** Builds an RFC 9162 proof path from fetched perfect-node hashes; throws if one is missing. */
export function assembleProof(elements: readonly (readonly NodeId[])[], hashes: ReadonlyMap<string, Uint8Array>): Buffer[] {
  return elements.map((ids) =>
    foldRight(
      ids.map((id) => {
        const h = hashes.get(nodeKey(id.level, id.index));
        if (h === undefined) throw new Error(`missing node ${nodeKey(id.level, id.index)}`);
        return h;
      }),
    ),
  );
}

function makePlan(topDown: NodeId[][]): ProofPlan {
  // Plans are built from the root downwards; RFC 9162 paths run leaf-upwards.
  const elements = topDown.reverse();
  const seen = new Set<string>();
  const ids: NodeId[] = [];
  for (const id of elements.flat()) {
    const key = nodeKey(id.level, id.index);
    if (!seen.has(key)) {
      seen.add(key);
      ids.push(id);
    }
  }
  return { ids, elements, assemble: (hashes) => assembleProof(elements, hashes) };
}

/**
 * Plan for PATH(index, D[0:size]) (RFC 6962 §2.1.1). Only the first step that
 * descends left while the subtree still ends at `size` yields a ragged
 * sibling; every other entry is a single perfect node, so the plan needs at
 * most ~2·log2(size) stored hashes.
 */
export function inclusionProofPlan(index: number, size: number): ProofPlan {
  assertSize('index', index);
  assertSize('size', size);
  if (index >= size) throw new RangeError(`index ${index} out of range for size ${size}`);
  const topDown: NodeId[][] = [];
  let start = 0;
  let len = size;
  while (len > 1) {
    const k = splitPoint(len);
    if (index < start + k) {
      topDown.push(rangeNodeIds(start + k, start + len));
      len = k;
    } else {
      topDown.push(rangeNodeIds(start, start + k));
      start += k;
      len -= k;
    }
  }
  return makePlan(topDown);
}

/**
 * Plan for PROOF(oldSize, D[0:newSize]) (RFC 6962 §2.1.2, SUBPROOF with
 * b = true). Ragged entries can only be the new tree's right edge (once) and
 * the old tree's right edge (once), so this also needs O(log n) hashes.
 * Sizes 0 and oldSize == newSize have empty proofs, matching the verifier.
 */
export function consistencyProofPlan(oldSize: number, newSize: number): ProofPlan {
  assertSize('oldSize', oldSize);
  assertSize('newSize', newSize);
  if (oldSize > newSize) throw new RangeError(`oldSize ${oldSize} > newSize ${newSize}`);
  const topDown: NodeId[][] = [];
  if (oldSize === 0 || oldSize === newSize) return makePlan(topDown);
  let start = 0;
  let len = newSize;
  let m = oldSize; // old size relative to `start`
  let oldRootIsAncestor = true;
  while (m !== len) {
    const k = splitPoint(len);
    if (m <= k) {
      topDown.push(rangeNodeIds(start + k, start + len));
      len = k;
    } else {
      topDown.push(rangeNodeIds(start, start + k));
      start += k;
      len -= k;
      m -= k;
      oldRootIsAncestor = false;
    }
  }
  // When the old tree is not a subtree of the path (b = false in RFC 6962),
  // the verifier needs the old subtree's own hash to start from.
  if (!oldRootIsAncestor) topDown.push(rangeNodeIds(start, start + len));
  return makePlan(topDown);
}
