import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { EMPTY_ROOT, leafHash } from './hash.js';
import { MemoryTree } from './reference.js';
import {
  consistencyProofPlan,
  frontierNodeIds,
  inclusionProofPlan,
  newNodesForAppend,
  nodeKey,
  rootFromFrontier,
} from './tree.js';
import { RootBuilder, rootFromLeafHashes, verifyConsistency, verifyInclusion } from './verify.js';

// Leaves must be distinct here: with duplicate leaves a proof for index i can
// legitimately verify at a neighbouring index holding the same hash.
const MAX = 300;
const LEAVES = Array.from({ length: MAX }, (_, i) => leafHash(Buffer.from(`v-${i}`)));
const TREE = new MemoryTree();
TREE.append(LEAVES);
const ROOTS = Array.from({ length: MAX + 1 }, (_, n) => TREE.root(n));

function flipBit(h: Buffer, bit: number): Buffer {
  const out = Buffer.from(h);
  out[Math.floor(bit / 8) % out.length]! ^= 1 << (bit % 8);
  return out;
}

const inclusionCase = fc
  .integer({ min: 1, max: MAX })
  .chain((size) => fc.tuple(fc.constant(size), fc.nat({ max: size - 1 }), fc.nat({ max: 255 }), fc.nat()));
const consistencyCase = fc
  .integer({ min: 1, max: MAX })
  .chain((n) => fc.tuple(fc.nat({ max: n }), fc.constant(n), fc.nat({ max: 255 }), fc.nat()));

describe('inclusion verification rejects tampering', () => {
  it('a single flipped bit in any proof element, the leaf or the root fails', () => {
    fc.assert(
      fc.property(inclusionCase, ([size, index, bit, pick]) => {
        const proof = TREE.inclusionProof(index, size);
        const root = ROOTS[size]!;
        const leaf = LEAVES[index]!;
        expect(verifyInclusion(leaf, index, size, proof, root)).toBe(true);
        if (proof.length > 0) {
          const j = pick % proof.length;
          const bad = proof.map((p, k) => (k === j ? flipBit(p, bit) : p));
          expect(verifyInclusion(leaf, index, size, bad, root)).toBe(false);
        }
        expect(verifyInclusion(flipBit(leaf, bit), index, size, proof, root)).toBe(false);
        expect(verifyInclusion(leaf, index, size, proof, flipBit(root, bit))).toBe(false);
      }),
      { numRuns: 400 },
    );
  });

  it('a changed index fails (distinct leaves)', () => {
    fc.assert(
      fc.property(inclusionCase, ([size, index]) => {
        const proof = TREE.inclusionProof(index, size);
        for (const other of [index - 1, index + 1]) {
          expect(verifyInclusion(LEAVES[index]!, other, size, proof, ROOTS[size]!)).toBe(false);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('a changed size fails whenever that size needs a different proof length', () => {
    // Same-length cases are not asserted: e.g. leaf 0's proof in a 5-leaf tree
    // also "verifies" at size 6 against the 5-leaf root, because the path
    // shape is identical; the claimed (size, root) pair is simply inconsistent
    // and a consistency check is what catches that.
    fc.assert(
      fc.property(inclusionCase, ([size, index]) => {
        const proof = TREE.inclusionProof(index, size);
        for (const other of [size - 1, size + 1]) {
          if (index >= other) {
            expect(verifyInclusion(LEAVES[index]!, index, other, proof, ROOTS[size]!)).toBe(false);
          } else if (inclusionProofPlan(index, other).elements.length !== proof.length) {
            expect(verifyInclusion(LEAVES[index]!, index, other, proof, ROOTS[size]!)).toBe(false);
          }
        }
      }),
      { numRuns: 400 },
    );
  });

  it('adding or dropping a proof element fails', () => {
    fc.assert(
      fc.property(inclusionCase, ([size, index]) => {
        const proof = TREE.inclusionProof(index, size);
        expect(verifyInclusion(LEAVES[index]!, index, size, [...proof, EMPTY_ROOT], ROOTS[size]!)).toBe(false);
        if (proof.length > 0) {
          expect(verifyInclusion(LEAVES[index]!, index, size, proof.slice(1), ROOTS[size]!)).toBe(false);
          expect(verifyInclusion(LEAVES[index]!, index, size, proof.slice(0, -1), ROOTS[size]!)).toBe(false);
        }
      }),
    );
  });
});

describe('consistency verification rejects tampering', () => {
  it('a single flipped bit in any proof element or either root fails', () => {
    fc.assert(
      fc.property(consistencyCase, ([m, n, bit, pick]) => {
        const proof = TREE.consistencyProof(m, n);
        expect(verifyConsistency(m, n, ROOTS[m]!, ROOTS[n]!, proof)).toBe(true);
        if (proof.length > 0) {
          const j = pick % proof.length;
          const bad = proof.map((p, k) => (k === j ? flipBit(p, bit) : p));
          expect(verifyConsistency(m, n, ROOTS[m]!, ROOTS[n]!, bad)).toBe(false);
        }
        expect(verifyConsistency(m, n, flipBit(ROOTS[m]!, bit), ROOTS[n]!, proof)).toBe(false);
        // Every tree extends the empty one, so from size 0 the new root is unconstrained.
        if (m > 0) expect(verifyConsistency(m, n, ROOTS[m]!, flipBit(ROOTS[n]!, bit), proof)).toBe(false);
      }),
      { numRuns: 400 },
    );
  });

  it('changed sizes fail whenever they need a different proof length', () => {
    fc.assert(
      fc.property(consistencyCase, ([m, n]) => {
        const proof = TREE.consistencyProof(m, n);
        const variants: [number, number][] = [
          [m - 1, n],
          [m + 1, n],
          [m, n - 1],
          [m, n + 1],
        ];
        for (const [m2, n2] of variants) {
          if (m2 < 0) continue;
          const bad = m2 > n2 || consistencyProofPlan(m2, n2).elements.length !== proof.length;
          if (bad) expect(verifyConsistency(m2, n2, ROOTS[m]!, ROOTS[n]!, proof)).toBe(false);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('applies the documented edge-case policy', () => {
    const root5 = ROOTS[5]!;
    expect(verifyConsistency(0, 5, EMPTY_ROOT, root5, [])).toBe(true);
    expect(verifyConsistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])).toBe(true);
    expect(verifyConsistency(0, 5, ROOTS[1]!, root5, [])).toBe(false);
    expect(verifyConsistency(0, 5, EMPTY_ROOT, root5, [ROOTS[1]!])).toBe(false);
    expect(verifyConsistency(5, 5, root5, root5, [])).toBe(true);
    expect(verifyConsistency(5, 5, root5, root5, [root5])).toBe(false);
    expect(verifyConsistency(5, 5, root5, ROOTS[4]!, [])).toBe(false);
    expect(verifyConsistency(6, 5, root5, root5, [])).toBe(false);
    expect(verifyConsistency(3, 5, ROOTS[3]!, root5, [])).toBe(false);
  });
});

describe('verifiers never throw on garbage', () => {
  const anything = fc.oneof(
    fc.anything(),
    fc.uint8Array({ minLength: 0, maxLength: 40 }),
    fc.array(fc.uint8Array({ minLength: 31, maxLength: 33 }), { maxLength: 5 }),
    fc.double(),
    fc.integer({ min: -5, max: 2 ** 60 }),
  );

  it('returns false instead of throwing', () => {
    fc.assert(
      fc.property(anything, anything, anything, anything, anything, (a, b, c, d, e) => {
        const f1 = verifyInclusion as (...args: unknown[]) => boolean;
        const f2 = verifyConsistency as (...args: unknown[]) => boolean;
        expect(f1(a, b, c, d, e)).toBe(false);
        expect(f2(a, b, c, d, e)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it('rejects wrong hash lengths, non-integer and unsafe sizes', () => {
    const proof = TREE.inclusionProof(3, 10);
    const root = ROOTS[10]!;
    expect(verifyInclusion(LEAVES[3]!.subarray(1), 3, 10, proof, root)).toBe(false);
    expect(verifyInclusion(LEAVES[3]!, 3, 10, [...proof.slice(0, -1), Buffer.alloc(33)], root)).toBe(false);
    expect(verifyInclusion(LEAVES[3]!, 3.5, 10, proof, root)).toBe(false);
    expect(verifyInclusion(LEAVES[3]!, 3, 2 ** 60, proof, root)).toBe(false);
    expect(verifyInclusion(LEAVES[3]!, 3, 10, proof, root.subarray(0, 31))).toBe(false);
    expect(verifyConsistency(3, 10, ROOTS[3]!, root, [Buffer.alloc(0)])).toBe(false);
    expect(verifyConsistency(3, Number.NaN, ROOTS[3]!, root, TREE.consistencyProof(3, 10))).toBe(false);
  });
});

describe('RootBuilder', () => {
  it('matches the stored tree for every prefix', () => {
    const b = new RootBuilder();
    expect(b.root()).toEqual(EMPTY_ROOT);
    for (let n = 1; n <= MAX; n++) {
      b.push(LEAVES[n - 1]!);
      expect(b.size).toBe(n);
      expect(b.root().equals(ROOTS[n]!)).toBe(true);
    }
    expect(rootFromLeafHashes(LEAVES)).toEqual(ROOTS[MAX]);
    expect(rootFromLeafHashes([])).toEqual(EMPTY_ROOT);
  });

  it('exposes a frontier that resumes appending', () => {
    const b = new RootBuilder();
    LEAVES.slice(0, 77).forEach((h) => b.push(h));
    const ids = frontierNodeIds(77); // 64 + 8 + 4 + 1
    const stored = TREE.getNodes(ids);
    expect(b.frontier()).toEqual(ids.map((id) => stored.get(nodeKey(id.level, id.index))));
    const resumed = newNodesForAppend(b.frontier(), b.size, LEAVES.slice(77));
    expect(rootFromFrontier(resumed.frontier, resumed.size)).toEqual(ROOTS[MAX]);
  });

  it('rejects leaf hashes of the wrong length', () => {
    expect(() => new RootBuilder().push(Buffer.alloc(31))).toThrow(RangeError);
  });
});
