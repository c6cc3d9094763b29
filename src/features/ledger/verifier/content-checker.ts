// Hashing the content of every own leaf is the verifier's largest cost. With a second
// core it runs on a worker thread while this thread reads lines and folds the tree: this
// thread hands over, per block of lines, the byte ranges of server-shaped content and the
// leaf hashes they must have; the worker answers with the ones that do not match, which
// this thread then re-checks carefully (export-line.ts). The worker is a few lines of
// plain JavaScript (eval), so it runs the same from TypeScript sources and from dist.
import { Worker } from 'node:worker_threads';
import { leafHash } from '../merkle/index.js';
import type { VerifyError } from './client.js';
import { recheckContent, type ContentResult } from './export-line.js';
import type { LeafHashLog } from './prefix-roots.js';

/** The server-shaped lines of one block whose content bytes must hash to their leaf hash. */
export class ContentBatch {
  readonly indexes: number[] = [];
  readonly lineStarts: number[] = [];
  readonly lineEnds: number[] = [];
  readonly contentStarts: number[] = [];
  constructor(
    readonly block: Buffer,
    readonly log: LeafHashLog,
  ) {}

  /** Leaf `index` is block[lineStart, lineEnd); its content runs from contentStart to the final `}`. */
  add(index: number, lineStart: number, lineEnd: number, contentStart: number): void {
    this.indexes.push(index);
    this.lineStarts.push(lineStart);
    this.lineEnds.push(lineEnd);
    this.contentStarts.push(contentStart);
  }
}

export interface ContentTally {
  verified: number;
  /** The content problem at the smallest leaf index. */
  error?: VerifyError;
}

export function tallyResult(tally: ContentTally, result: ContentResult): void {
  if (result.verified) tally.verified++;
  else if (result.error && (!tally.error || result.error.index! < tally.error.index!)) tally.error = result.error;
}

/** Counts the matches and re-checks the mismatches (rare: only a bad or reformatted line). */
function settle(batch: ContentBatch, mismatched: readonly number[], tally: ContentTally): void {
  tally.verified += batch.indexes.length - mismatched.length;
  for (const k of mismatched) {
    const index = batch.indexes[k]!;
    tallyResult(tally, recheckContent(batch.block, batch.lineStarts[k]!, batch.lineEnds[k]!, index, batch.log.leaf(index)));
  }
}

export interface ContentChecker {
  submit(batch: ContentBatch): Promise<void>;
  /** Resolves once every submitted batch is settled into the tally. */
  finish(): Promise<void>;
  close(): void;
}

export function inlineContentChecker(tally: ContentTally): ContentChecker {
  return {
    async submit(batch) {
      const mismatched: number[] = [];
      for (let k = 0; k < batch.indexes.length; k++) {
        const content = batch.block.subarray(batch.contentStarts[k], batch.lineEnds[k]! - 1);
        if (!leafHash(content).equals(batch.log.leaf(batch.indexes[k]!))) mismatched.push(k);
      }
      settle(batch, mismatched, tally);
    },
    async finish() {},
    close() {},
  };
}

// RFC 6962 leaf hash, SHA-256(0x00 ‖ content), as merkle/hash.ts computes it (the tests
// check both paths agree).
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { hash } = require('node:crypto');
parentPort.on('message', (job) => {
  const block = Buffer.from(job.block.buffer, job.block.byteOffset, job.block.byteLength);
  const expected = Buffer.from(job.expected.buffer, job.expected.byteOffset, job.expected.byteLength);
  const mismatched = [];
  for (let k = 0; k < job.starts.length; k++) {
    const data = Buffer.allocUnsafe(1 + job.ends[k] - job.starts[k]);
    data[0] = 0;
    block.copy(data, 1, job.starts[k], job.ends[k]);
    const at = 32 * job.leaves[k];
    if (hash('sha256', data, 'buffer').compare(expected, at, at + 32) !== 0) mismatched.push(k);
  }
  parentPort.postMessage({ id: job.id, mismatched });
});
`;

export function workerContentChecker(tally: ContentTally, maxInFlight = 4): ContentChecker {
  const worker = new Worker(WORKER_SOURCE, { eval: true });
  const pending = new Map<number, { batch: ContentBatch; resolve: () => void; reject: (e: unknown) => void }>();
  const inFlight: Promise<void>[] = [];
  let failure: Error | null = null;
  let nextId = 0;
  const failAll = (error: Error) => {
    failure ??= error;
    for (const p of pending.values()) p.reject(error);
    pending.clear();
  };
  worker.on('message', ({ id, mismatched }: { id: number; mismatched: number[] }) => {
    const p = pending.get(id);
    if (!p) return;
    pending.delete(id);
    try {
      settle(p.batch, mismatched, tally);
      p.resolve();
    } catch (error) {
      p.reject(error);
    }
  });
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new Error(`content worker exited (${code})`)));
  return {
    async submit(batch) {
      if (failure) throw failure;
      if (batch.indexes.length === 0) return;
      const id = nextId++;
      const block = new Uint8Array(batch.block); // a copy the worker can own
      const first = batch.indexes[0]!;
      const expected = batch.log.copyRange(first, batch.indexes[batch.indexes.length - 1]! + 1);
      const done = new Promise<void>((resolve, reject) => pending.set(id, { batch, resolve, reject }));
      done.catch(() => {}); // awaited below or in finish(); never an unhandled rejection
      const job = {
        id,
        block,
        starts: Int32Array.from(batch.contentStarts),
        ends: Int32Array.from(batch.lineEnds, (end) => end - 1),
        leaves: Int32Array.from(batch.indexes, (index) => index - first),
        expected,
      };
      worker.postMessage(job, [block.buffer]);
      inFlight.push(done);
      if (inFlight.length >= maxInFlight) await inFlight.shift();
    },
    async finish() {
      await Promise.all(inFlight.splice(0));
    },
    close() {
      worker.removeAllListeners('exit');
      void worker.terminate();
    },
  };
}
