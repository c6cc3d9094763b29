import { hash } from 'node:crypto';
import { canonicalJson } from './jcs.js';

/** Every hash in the log is a 32-byte SHA-256 digest. */
export const HASH_SIZE = 32;

// Domain separation bytes from RFC 6962 §2.1: without them a leaf could be
// passed off as an interior node (second-preimage attack on the tree).
const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

/** SHA-256 of the empty string: the RFC 6962 root of a tree with no leaves. */
export const EMPTY_ROOT: Buffer = hash('sha256', Buffer.alloc(0), 'buffer');

/** RFC 6962 leaf hash: SHA-256(0x00 || data). */
export function leafHash(data: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(1 + data.length);
  buf[0] = LEAF_PREFIX;
  buf.set(data, 1);
  return hash('sha256', buf, 'buffer');
}

/**
 * The leaf hash of canonical JSON text: SHA-256(0x00 || UTF-8 of text), without building
 * the prefixed bytes first (the prefix is one UTF-8 byte as a character).
 */
export function leafHashOfCanonicalJson(text: string): Buffer {
  return hash('sha256', `${String.fromCharCode(LEAF_PREFIX)}${text}`, 'buffer');
}

// One scratch buffer is reused for every interior hash: `crypto.hash` is
// synchronous and copies its input, and skipping the per-call allocation
// matters when a verifier recomputes the root of a million-leaf export.
const nodeScratch = Buffer.alloc(1 + 2 * HASH_SIZE);
nodeScratch[0] = NODE_PREFIX;

/** RFC 6962 interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length === HASH_SIZE && right.length === HASH_SIZE) {
    nodeScratch.set(left, 1);
    nodeScratch.set(right, 1 + HASH_SIZE);
    return hash('sha256', nodeScratch, 'buffer');
  }
  // Odd-sized inputs only come from garbage proofs; hash them faithfully
  // rather than truncating so such a proof simply fails to match.
  const buf = Buffer.allocUnsafe(1 + left.length + right.length);
  buf[0] = NODE_PREFIX;
  buf.set(left, 1);
  buf.set(right, 1 + left.length);
  return hash('sha256', buf, 'buffer');
}

/**
 * UTF-8 bytes of the RFC 8785 (JCS) form of `value`, so the same logical
 * record always hashes to the same leaf regardless of key order or spacing.
 * Throws on values JSON cannot represent (undefined, NaN, cycles, ...), since
 * silently hashing a placeholder would make distinct records collide.
 */
export function canonicalLeafBytes(value: unknown): Buffer {
  const text = canonicalJson(value);
  if (text === undefined) {
    throw new TypeError('value has no JSON representation');
  }
  return Buffer.from(text, 'utf8');
}

/** Byte equality that tolerates mismatched lengths, so verifiers never throw on garbage. */
export function hashEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}
