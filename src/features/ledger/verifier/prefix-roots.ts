// The leaf hashes of a downloaded log, kept compactly (32 bytes per leaf) and folded into
// the root as they arrive, so that when the root does not match, the root of any prefix
// can be recomputed cheaply to find the first bad leaf. A frontier snapshot every
// SNAPSHOT_EVERY leaves bounds each prefix-root computation to that many hashes.
import { HASH_SIZE, newNodesForAppend, nodeHash, rootFromFrontier } from '../merkle/index.js';

const SNAPSHOT_EVERY = 1 << 14;

export class LeafHashLog {
  private hashes: Buffer;
  private count = 0;
  // The frontier: perfect-subtree roots of [0, count), largest first, with their levels.
  private readonly stack: Buffer[] = [];
  private readonly levels: number[] = [];
  private readonly snapshots: Buffer[][] = [[]];

  constructor(expectedSize: number) {
    this.hashes = Buffer.alloc(Math.max(expectedSize, 1) * HASH_SIZE);
  }

  get size(): number {
    return this.count;
  }

  /** Appends a copy of `hash` (32 bytes). */
  push(hash: Uint8Array): void {
    const at = this.count * HASH_SIZE;
    if (at + HASH_SIZE > this.hashes.length) {
      const grown = Buffer.alloc(this.hashes.length * 2);
      this.hashes.copy(grown);
      this.hashes = grown;
    }
    this.hashes.set(hash, at);
    // The stored copy never changes, so the frontier may point at it.
    let h: Buffer = this.hashes.subarray(at, at + HASH_SIZE);
    let level = 0;
    while (this.levels.length > 0 && this.levels[this.levels.length - 1] === level) {
      this.levels.pop();
      h = nodeHash(this.stack.pop()!, h);
      level++;
    }
    this.levels.push(level);
    this.stack.push(h);
    this.count++;
    if (this.count % SNAPSHOT_EVERY === 0) this.snapshots.push([...this.stack]);
  }

  leaf(index: number): Buffer {
    if (index < 0 || index >= this.count) throw new RangeError(`no leaf ${index}`);
    return this.hashes.subarray(index * HASH_SIZE, (index + 1) * HASH_SIZE);
  }

  /** A copy of the hashes of leaves [from, to), concatenated. */
  copyRange(from: number, to: number): Buffer {
    return Buffer.from(this.hashes.subarray(from * HASH_SIZE, to * HASH_SIZE));
  }

  root(): Buffer {
    return rootFromFrontier(this.stack, this.count);
  }

  /** Root of the first `m` leaves (m <= size). */
  prefixRoot(m: number): Buffer {
    if (m > this.count) throw new RangeError(`prefix ${m} beyond ${this.count} leaves`);
    const block = Math.floor(m / SNAPSHOT_EVERY);
    const base = block * SNAPSHOT_EVERY;
    const leaves: Buffer[] = [];
    for (let i = base; i < m; i++) leaves.push(this.leaf(i));
    const { frontier } = newNodesForAppend(this.snapshots[block]!, base, leaves);
    return rootFromFrontier(frontier, m);
  }
}
