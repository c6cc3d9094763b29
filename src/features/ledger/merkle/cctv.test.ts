import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { EMPTY_ROOT, leafHash } from './hash.js';
import { MemoryTree, refConsistencyProof, refInclusionProof, rootOfRange } from './reference.js';
import { rootFromFrontier, newNodesForAppend } from './tree.js';
import { rootFromLeafHashes, verifyConsistency, verifyInclusion } from './verify.js';

// The C2SP CCTV vectors, vendored byte for byte in test/vectors/merkle-cctv (BSD-2-Clause,
// LICENSE there) so every checkout and CI run has them. Reading them at import time makes
// a missing folder fail this file loudly instead of letting the suite pass with nothing
// checked.
const DIR = new URL('../../../../test/vectors/merkle-cctv/', import.meta.url);

function load<T>(name: string): T[] {
  const parsed: unknown = JSON.parse(readFileSync(new URL(name, DIR), 'utf8'));
  if (!Array.isArray(parsed) || parsed.length === 0) throw new Error(`CCTV vector ${name} is empty or not a list`);
  return parsed as T[];
}

interface TreeHead {
  leaf_data: string;
  leaf_hash: string;
  root_hash: string;
}
interface Inclusion {
  leaf_hash: string;
  leaf_index: number;
  tree_size: number;
  root_hash: string;
  inclusion_path: string[];
  comment?: string;
}
interface Consistency {
  old_size: number;
  new_size: number;
  old_root: string;
  new_root: string;
  consistency_path: string[];
  comment?: string;
}

const heads = load<TreeHead>('merkle_tree.json');
const inclusionValid = load<Inclusion>('inclusion-valid.json');
const inclusionInvalid = load<Inclusion>('inclusion-invalid.json');
const consistencyValid = load<Consistency>('consistency-valid.json');
const consistencyInvalid = load<Consistency>('consistency-invalid.json');

const b64 = (s: string): Buffer => Buffer.from(s, 'base64');
const leaves = heads.map((h) => leafHash(Buffer.from(h.leaf_data, 'utf8')));
const tree = new MemoryTree();
tree.append(leaves);

describe('CCTV merkle_tree.json', () => {
  it('leaf hashes match', () => {
    heads.forEach((h, i) => expect(leaves[i]!.toString('base64')).toBe(h.leaf_hash));
  });

  it('every tree head matches the reference MTH, the frontier appender and RootBuilder', () => {
    let frontier: Buffer[] = [];
    let size = 0;
    heads.forEach((h, i) => {
      const n = i + 1;
      expect(rootOfRange(leaves, 0, n).toString('base64')).toBe(h.root_hash);
      const r = newNodesForAppend(frontier, size, [leaves[i]!]);
      frontier = r.frontier;
      size = r.size;
      expect(rootFromFrontier(frontier, size).toString('base64')).toBe(h.root_hash);
      expect(rootFromLeafHashes(leaves.slice(0, n)).toString('base64')).toBe(h.root_hash);
      expect(tree.root(n).toString('base64')).toBe(h.root_hash);
    });
  });

  it('the empty tree root is SHA-256("")', () => {
    expect(EMPTY_ROOT.toString('base64')).toBe('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
    expect(rootOfRange(leaves, 0, 0)).toEqual(EMPTY_ROOT);
  });
});

describe('CCTV inclusion proofs', () => {
  it.each(inclusionValid.map((v, i) => [i, v] as const))('accepts valid #%i', (_i, v) => {
    expect(verifyInclusion(b64(v.leaf_hash), v.leaf_index, v.tree_size, v.inclusion_path.map(b64), b64(v.root_hash))).toBe(true);
  });

  it.each(inclusionInvalid.map((v, i) => [i, v.comment ?? '', v] as const))('rejects invalid #%i (%s)', (_i, _c, v) => {
    expect(verifyInclusion(b64(v.leaf_hash), v.leaf_index, v.tree_size, v.inclusion_path.map(b64), b64(v.root_hash))).toBe(false);
  });

  it('planner generates exactly the valid proofs', () => {
    for (const v of inclusionValid) {
      const expected = v.inclusion_path;
      expect(tree.inclusionProof(v.leaf_index, v.tree_size).map((h) => h.toString('base64'))).toEqual(expected);
      expect(refInclusionProof(leaves, v.leaf_index, v.tree_size).map((h) => h.toString('base64'))).toEqual(expected);
      expect(tree.root(v.tree_size).toString('base64')).toBe(v.root_hash);
    }
  });
});

describe('CCTV consistency proofs', () => {
  it.each(consistencyValid.map((v, i) => [i, v] as const))('accepts valid #%i', (_i, v) => {
    expect(verifyConsistency(v.old_size, v.new_size, b64(v.old_root), b64(v.new_root), v.consistency_path.map(b64))).toBe(true);
  });

  it.each(consistencyInvalid.map((v, i) => [i, v.comment ?? '', v] as const))('rejects invalid #%i (%s)', (_i, _c, v) => {
    expect(verifyConsistency(v.old_size, v.new_size, b64(v.old_root), b64(v.new_root), v.consistency_path.map(b64))).toBe(false);
  });

  it('planner generates exactly the valid proofs', () => {
    for (const v of consistencyValid) {
      const expected = v.consistency_path;
      expect(tree.consistencyProof(v.old_size, v.new_size).map((h) => h.toString('base64'))).toEqual(expected);
      expect(refConsistencyProof(leaves, v.old_size, v.new_size).map((h) => h.toString('base64'))).toEqual(expected);
      expect(tree.root(v.new_size).toString('base64')).toBe(v.new_root);
    }
  });

  it('planner proofs between every pair of CCTV tree heads verify against the published roots', () => {
    for (let m = 0; m <= heads.length; m++) {
      for (let n = m; n <= heads.length; n++) {
        const oldRoot = m === 0 ? EMPTY_ROOT : b64(heads[m - 1]!.root_hash);
        const newRoot = n === 0 ? EMPTY_ROOT : b64(heads[n - 1]!.root_hash);
        expect(verifyConsistency(m, n, oldRoot, newRoot, tree.consistencyProof(m, n))).toBe(true);
      }
    }
  });
});
