import { EMPTY_ROOT, HASH_SIZE, hashEquals, nodeHash } from './hash.js';

// Verifiers face untrusted input (proofs from a server, roots from a file),
// so every check returns false instead of throwing. Shifts use Math.floor
// because JS bitwise operators truncate to 32 bits and sizes may exceed 2^31.

function isSize(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function isHash(h: unknown): h is Uint8Array {
  return h instanceof Uint8Array && h.length === HASH_SIZE;
}

function isHashList(p: unknown): p is Uint8Array[] {
  return Array.isArray(p) && p.every(isHash);
}

const odd = (n: number): boolean => n % 2 === 1;
const half = (n: number): number => Math.floor(n / 2);

/** RFC 9162 §2.1.3.2: does `proof` show `leafHash` at `index` in the tree with `root`? */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  try {
    if (!isHash(leafHash) || !isHash(root) || !isSize(index) || !isSize(size) || !isHashList(proof)) {
      return false;
    }
    if (index >= size) return false;
    let fn = index;
    let sn = size - 1;
    let r: Uint8Array = leafHash;
    for (const p of proof) {
      if (sn === 0) return false;
      if (odd(fn) || fn === sn) {
        r = nodeHash(p, r);
        if (!odd(fn)) {
          while (!odd(fn) && fn !== 0) {
            fn = half(fn);
            sn = half(sn);
          }
        }
      } else {
        r = nodeHash(r, p);
      }
      fn = half(fn);
      sn = half(sn);
    }
    return sn === 0 && hashEquals(r, root);
  } catch {
    return false;
  }
}

/**
 * RFC 9162 §2.1.4.2: is the tree (newSize, newRoot) an append-only extension
 * of (oldSize, oldRoot)?
 *
 * Edge cases the RFC algorithm leaves open, decided here:
 * - oldSize > newSize: false.
 * - oldSize == newSize: the proof must be empty and the roots equal.
 * - oldSize == 0: every tree extends the empty tree, but we still insist the
 *   proof is empty and oldRoot is EMPTY_ROOT (SHA-256 of ""), so a caller
 *   holding a bogus "empty" root is told so instead of silently passing.
 */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  try {
    if (!isSize(oldSize) || !isSize(newSize) || !isHash(oldRoot) || !isHash(newRoot) || !isHashList(proof)) {
      return false;
    }
    if (oldSize > newSize) return false;
    if (oldSize === newSize) return proof.length === 0 && hashEquals(oldRoot, newRoot);
    if (oldSize === 0) return proof.length === 0 && hashEquals(oldRoot, EMPTY_ROOT);
    if (proof.length === 0) return false;

    // A power-of-two old tree is itself a node of the new tree, so the
    // proof omits it and the verifier starts from the old root.
    const isPowerOfTwo = 2 ** Math.round(Math.log2(oldSize)) === oldSize;
    const path: readonly Uint8Array[] = isPowerOfTwo ? [oldRoot, ...proof] : proof;

    let fn = oldSize - 1;
    let sn = newSize - 1;
    while (odd(fn)) {
      fn = half(fn);
      sn = half(sn);
    }
    let fr: Uint8Array = path[0]!;
    let sr: Uint8Array = path[0]!;
    for (let i = 1; i < path.length; i++) {
      const c = path[i]!;
      if (sn === 0) return false;
      if (odd(fn) || fn === sn) {
        fr = nodeHash(c, fr);
        sr = nodeHash(c, sr);
        if (!odd(fn)) {
          while (!odd(fn) && fn !== 0) {
            fn = half(fn);
            sn = half(sn);
          }
        }
      } else {
        sr = nodeHash(sr, c);
      }
      fn = half(fn);
      sn = half(sn);
    }
    return sn === 0 && hashEquals(fr, oldRoot) && hashEquals(sr, newRoot);
  } catch {
    return false;
  }
}

/**
 * Streaming RFC 6962 root computation: keeps only the frontier (one hash per
 * set bit of the size), so a million-leaf export costs ~1M interior hashes and
 * constant-ish memory, with no tree held in RAM.
 */
export class RootBuilder {
  private readonly hashes: Buffer[] = [];
  private readonly levels: number[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(leafHash: Uint8Array): void {
    if (leafHash.length !== HASH_SIZE) throw new RangeError('leaf hash must be 32 bytes');
    let h: Uint8Array = leafHash;
    let level = 0;
    while (this.levels.length > 0 && this.levels[this.levels.length - 1] === level) {
      this.levels.pop();
      h = nodeHash(this.hashes.pop()!, h);
      level += 1;
    }
    this.levels.push(level);
    // Only an unmerged leaf is still the caller's buffer; copy it so later
    // reuse of that buffer by the caller cannot corrupt the frontier.
    this.hashes.push(level === 0 ? Buffer.from(h) : (h as Buffer));
    this.count += 1;
  }

  /** Current frontier (largest subtree first), e.g. to resume appending via newNodesForAppend. */
  frontier(): Buffer[] {
    return [...this.hashes];
  }

  root(): Buffer {
    const last = this.hashes[this.hashes.length - 1];
    if (last === undefined) return EMPTY_ROOT;
    let acc = last;
    for (let i = this.hashes.length - 2; i >= 0; i--) acc = nodeHash(this.hashes[i]!, acc);
    return acc;
  }
}

/** RFC 6962 root of a whole list (or stream) of leaf hashes. */
export function rootFromLeafHashes(leafHashes: Iterable<Uint8Array>): Buffer {
  const builder = new RootBuilder();
  for (const h of leafHashes) builder.push(h);
  return builder.root();
}
