import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { EMPTY_ROOT, leafHash, nodeHash } from './hash.js';
import { MemoryTree, refConsistencyProof, refInclusionProof, rootOfRange } from './reference.js';
import {
  consistencyProofPlan,
  frontierNodeIds,
  inclusionProofPlan,
  newNodesForAppend,
  nodeKey,
  rangeNodeIds,
  rootFromFrontier,
  type NodeId,
} from './tree.js';
import { verifyConsistency, verifyInclusion } from './verify.js';

// Distinct leaves: leaf i hashes its own index, cheap and collision-free.
function leavesOf(n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`leaf-${i}`)));
}

const MAX = 300;
const LEAVES = leavesOf(MAX);
const TREE = new MemoryTree();
TREE.append(LEAVES);

// Every perfect node of the 300-leaf tree, computed once by the reference MTH.
const PERFECT = new Map<string, Buffer>();
for (let level = 0; 2 ** level <= MAX; level++) {
  for (let i = 0; (i + 1) * 2 ** level <= MAX; i++) {
    PERFECT.set(nodeKey(level, i), rootOfRange(LEAVES, i * 2 ** level, (i + 1) * 2 ** level));
  }
}

const hex = (hs: Buffer[]): string[] => hs.map((h) => h.toString('hex'));
const log2Ceil = (n: number): number => Math.ceil(Math.log2(Math.max(n, 1)));

describe('frontier appender', () => {
  it('matches the RFC 6962 recursion for every size up to 300', () => {
    for (let n = 0; n <= MAX; n++) {
      expect(TREE.root(n)).toEqual(rootOfRange(LEAVES, 0, n));
    }
  });

  it('is independent of how leaves are batched', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 12 }), (batches) => {
        let frontier: Buffer[] = [];
        let size = 0;
        const stored = new Map<string, Buffer>();
        let duplicates = 0;
        for (const k of batches) {
          if (size + k > MAX) break;
          const r = newNodesForAppend(frontier, size, LEAVES.slice(size, size + k));
          for (const node of r.nodes) {
            if (stored.has(nodeKey(node.level, node.index))) duplicates++;
            stored.set(nodeKey(node.level, node.index), node.hash);
          }
          frontier = r.frontier;
          size = r.size;
        }
        expect(duplicates).toBe(0);
        expect(rootFromFrontier(frontier, size).equals(rootOfRange(LEAVES, 0, size))).toBe(true);
        // Exactly the complete perfect subtrees were emitted, each once, with the right hash.
        let expected = 0;
        const wrong: string[] = [];
        for (let level = 0; 2 ** level <= size; level++) {
          for (let i = 0; (i + 1) * 2 ** level <= size; i++) {
            expected++;
            const key = nodeKey(level, i);
            if (!stored.get(key)?.equals(PERFECT.get(key)!)) wrong.push(key);
          }
        }
        expect(wrong).toEqual([]);
        expect(stored.size).toBe(expected);
      }),
    );
  });

  it('rejects a frontier that does not fit the size', () => {
    expect(() => newNodesForAppend([], 3, [])).toThrow(RangeError);
    expect(() => newNodesForAppend([EMPTY_ROOT], 0, [])).toThrow(RangeError);
    expect(() => newNodesForAppend([], 0, [Buffer.alloc(31)])).toThrow(RangeError);
  });

  it('frontier ids are the binary decomposition of the size', () => {
    expect(frontierNodeIds(0)).toEqual([]);
    expect(frontierNodeIds(13)).toEqual([
      { level: 3, index: 0 },
      { level: 2, index: 2 },
      { level: 0, index: 12 },
    ]);
    const big = 2 ** 53 - 1;
    const ids = frontierNodeIds(big);
    expect(ids).toHaveLength(53);
    expect(ids[0]).toEqual({ level: 52, index: 0 });
    expect(ids[52]).toEqual({ level: 0, index: big - 1 });
    expect(() => rangeNodeIds(1, 4)).toThrow(RangeError);
  });
});

describe('proof planner vs RFC 6962 reference', () => {
  const sizeAndIndex = fc.integer({ min: 1, max: MAX }).chain((size) => fc.tuple(fc.constant(size), fc.nat({ max: size - 1 })));
  const sizes = fc.integer({ min: 1, max: MAX }).chain((n) => fc.tuple(fc.nat({ max: n }), fc.constant(n)));

  it('inclusion proofs equal PATH(m, D[n]) and verify', () => {
    fc.assert(
      fc.property(sizeAndIndex, ([size, index]) => {
        const plan = inclusionProofPlan(index, size);
        const proof = plan.assemble(TREE.getNodes(plan.ids));
        expect(hex(proof)).toEqual(hex(refInclusionProof(LEAVES, index, size)));
        expect(plan.ids.length).toBeLessThanOrEqual(2 * log2Ceil(size));
        expect(verifyInclusion(LEAVES[index]!, index, size, proof, TREE.root(size))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('consistency proofs equal PROOF(m, D[n]) and verify', () => {
    fc.assert(
      fc.property(sizes, ([oldSize, newSize]) => {
        const plan = consistencyProofPlan(oldSize, newSize);
        const proof = plan.assemble(TREE.getNodes(plan.ids));
        expect(hex(proof)).toEqual(hex(refConsistencyProof(LEAVES, oldSize, newSize)));
        expect(plan.ids.length).toBeLessThanOrEqual(3 * log2Ceil(newSize) + 1);
        expect(verifyConsistency(oldSize, newSize, TREE.root(oldSize), TREE.root(newSize), proof)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('rejects impossible requests', () => {
    expect(() => inclusionProofPlan(5, 5)).toThrow(RangeError);
    expect(() => inclusionProofPlan(-1, 5)).toThrow(RangeError);
    expect(() => inclusionProofPlan(0.5, 5)).toThrow(RangeError);
    expect(() => consistencyProofPlan(6, 5)).toThrow(RangeError);
    expect(() => TREE.getNodes([{ level: 9, index: 0 }])).toThrow(/not stored/);
    expect(() => inclusionProofPlan(0, 3).assemble(new Map())).toThrow(/missing node/);
  });
});

describe('larger trees (2^k ± 1 leaves)', () => {
  for (const k of [8, 10, 13]) {
    for (const size of [2 ** k - 1, 2 ** k, 2 ** k + 1]) {
      it(`size ${size}`, () => {
        const leaves = leavesOf(size);
        const tree = new MemoryTree();
        tree.append(leaves);
        const root = rootOfRange(leaves, 0, size);
        expect(tree.root()).toEqual(root);
        const picks = [0, 1, size >> 1, size - 2, size - 1].filter((i) => i >= 0 && i < size);
        for (const i of picks) {
          const proof = tree.inclusionProof(i);
          expect(hex(proof)).toEqual(hex(refInclusionProof(leaves, i, size)));
          expect(verifyInclusion(leaves[i]!, i, size, proof, root)).toBe(true);
          const old = i + 1;
          const cproof = tree.consistencyProof(old);
          expect(hex(cproof)).toEqual(hex(refConsistencyProof(leaves, old, size)));
          expect(verifyConsistency(old, size, tree.root(old), root, cproof)).toBe(true);
        }
      });
    }
  }
});

// A tree whose leaves are all equal has one hash per level, so trees of up to
// 2^53 - 1 leaves can be materialised. That exercises the index arithmetic
// past 2^31/2^32 where 32-bit bitwise operators would silently wrap.
describe('huge uniform trees (sizes up to 2^53 - 1)', () => {
  const levelHash: Buffer[] = [leafHash(Buffer.from('same'))];
  for (let l = 1; l <= 53; l++) levelHash.push(nodeHash(levelHash[l - 1]!, levelHash[l - 1]!));
  const lookup = (ids: NodeId[]): Map<string, Buffer> =>
    new Map(ids.map((id) => [nodeKey(id.level, id.index), levelHash[id.level]!]));

  // Reference MTH for n uniform leaves, memoised on length (the RFC recursion
  // only ever depends on the length here).
  const memo = new Map<number, Buffer>();
  function uniformRoot(n: number): Buffer {
    if (n === 0) return EMPTY_ROOT;
    if (n === 1) return levelHash[0]!;
    const cached = memo.get(n);
    if (cached) return cached;
    let k = 1;
    while (k * 2 < n) k *= 2;
    const r = nodeHash(uniformRoot(k), uniformRoot(n - k));
    memo.set(n, r);
    return r;
  }
  const rootOf = (size: number): Buffer =>
    rootFromFrontier(
      frontierNodeIds(size).map((id) => levelHash[id.level]!),
      size,
    );

  const bigSize = fc.oneof(
    fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    fc.integer({ min: 1, max: 52 }).chain((k) => fc.constantFrom(2 ** k - 1, 2 ** k, 2 ** k + 1)),
  );

  it('roots from the frontier match the RFC recursion', () => {
    fc.assert(
      fc.property(bigSize, (size) => {
        expect(rootOf(size)).toEqual(uniformRoot(size));
      }),
    );
  });

  it('planned inclusion proofs verify and stay O(log n)', () => {
    fc.assert(
      fc.property(
        bigSize.chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: 0, max: s - 1 }))),
        ([size, index]) => {
          const plan = inclusionProofPlan(index, size);
          expect(plan.ids.length).toBeLessThanOrEqual(2 * log2Ceil(size));
          const proof = plan.assemble(lookup(plan.ids));
          expect(verifyInclusion(levelHash[0]!, index, size, proof, rootOf(size))).toBe(true);
        },
      ),
    );
  });

  it('planned consistency proofs verify and stay O(log n)', () => {
    fc.assert(
      fc.property(
        bigSize.chain((n) => fc.tuple(fc.integer({ min: 0, max: n }), fc.constant(n))),
        ([oldSize, newSize]) => {
          const plan = consistencyProofPlan(oldSize, newSize);
          expect(plan.ids.length).toBeLessThanOrEqual(3 * log2Ceil(newSize) + 1);
          const proof = plan.assemble(lookup(plan.ids));
          expect(verifyConsistency(oldSize, newSize, rootOf(oldSize), rootOf(newSize), proof)).toBe(true);
        },
      ),
    );
  });
});
