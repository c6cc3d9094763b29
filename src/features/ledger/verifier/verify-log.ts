// `cairn verify`: checks a Cairn ledger from the outside, trusting nothing but the
// instance's public key (given by the user) and what this machine verified before.
//   1. the checkpoint's signature (and origin);
//   2. consistency with the last checkpoint in the state file (else: FORK DETECTED);
//   3. every leaf of the export: its content re-hashes to its leaf hash, and all leaf
//      hashes fold to the signed root; on a mismatch the first bad leaf is located with
//      consistency proofs from the server;
//   4. a sample (or all) of the server's inclusion proofs against the signed root.
// Without a token (the export needs audit:read) only 1, 2 and 4 run.
import { createReadStream } from 'node:fs';
import os from 'node:os';
import { parseVerifierKey, verifyCheckpoint, type ParsedCheckpoint } from '../merkle/index.js';
import { LedgerClient, VerifyError } from './client.js';
import { ContentBatch, inlineContentChecker, tallyResult, workerContentChecker, type ContentTally } from './content-checker.js';
import { readLeafLine } from './export-line.js';
import { forEachLine, ndjsonBlocks } from './lines.js';
import { LeafHashLog } from './prefix-roots.js';
import { checkAgainstKnown, checkInclusionProofs, locateFirstBadLeaf } from './proofs.js';
import { readState, writeState } from './state.js';

export { VerifyError } from './client.js';

export interface VerifyOptions {
  /** Server base URL (http://host:port). */
  url?: string;
  /** An export file (NDJSON) to verify offline instead. */
  file?: string;
  /** Verifier key, `<name>+<hex id>+<base64 key>` as served by GET /public-key. */
  publicKey?: string;
  /** Use the key the server serves (only proves the server agrees with itself). */
  trustServerKey?: boolean;
  /** Expected origin line; default `<key name>/ledger`. */
  origin?: string;
  token?: string;
  /** State file; null disables it. */
  statePath?: string | null;
  /** Check every inclusion proof instead of a sample. */
  all?: boolean;
  sample?: number;
  /** Hash leaf contents on a worker thread (default: for logs of PARALLEL_FROM leaves or more, given two cores). */
  parallel?: boolean;
  fetch?: typeof fetch;
  progressEvery?: number;
}

export interface VerifyReporter {
  progress(message: string): void;
  warn(message: string): void;
}

export type VerifyProblem =
  | 'usage'
  | 'unreachable'
  | 'http_error'
  | 'malformed'
  | 'bad_signature'
  | 'fork'
  | 'rollback'
  | 'leaf_missing'
  | 'record_missing'
  | 'content_mismatch'
  | 'root_mismatch'
  | 'inclusion_failed';

export interface VerifyOutcome {
  ok: boolean;
  mode: 'full' | 'checkpoint-only' | 'file';
  origin?: string;
  size?: number;
  root?: string;
  leaves_verified: number;
  contents_verified: number;
  proofs_verified: number;
  first_bad_index?: number;
  problem?: VerifyProblem;
  message: string;
  warnings: string[];
}

const PARALLEL_FROM = 20_000;

export async function verifyLog(opts: VerifyOptions, reporter: VerifyReporter): Promise<VerifyOutcome> {
  const mode: VerifyOutcome['mode'] = opts.file ? 'file' : opts.token ? 'full' : 'checkpoint-only';
  const out: VerifyOutcome = {
    ok: false,
    mode,
    leaves_verified: 0,
    contents_verified: 0,
    proofs_verified: 0,
    message: '',
    warnings: [],
  };
  const warn = (message: string) => (out.warnings.push(message), reporter.warn(message));
  let blocks: AsyncGenerator<Buffer> | null = null;
  try {
    if (!opts.url === !opts.file) throw new VerifyError('usage', 'give exactly one of --url or --file');
    const client = opts.url ? new LedgerClient({ url: opts.url, token: opts.token, fetch: opts.fetch }) : null;
    const key = await resolveKey(opts, client, warn);
    const origin = opts.origin ?? `${key.keyName}/ledger`;

    let note: string;
    if (opts.file) blocks = ndjsonBlocks(createReadStream(opts.file, { highWaterMark: 1 << 20 }));
    else if (client && opts.token) blocks = await client.exportBlocks();
    if (blocks) {
      const header = await takeHeaderLine(blocks);
      note = parseHeader(header.line);
      blocks = header.rest;
    } else {
      note = (await client!.checkpoint()).note;
    }
    const verified = verifyCheckpoint(note, key, { expectedOrigin: origin });
    if (!verified.ok) throw new VerifyError('bad_signature', `the checkpoint does not verify: ${verified.message}`);
    const cp = verified.checkpoint;
    Object.assign(out, { origin: cp.origin, size: cp.size, root: cp.root.toString('base64') });

    const state = opts.statePath
      ? await readState(opts.statePath).catch((e: unknown) => Promise.reject(unreadable('state file', e)))
      : {};
    const known = state[cp.origin];
    if (known && client) await checkAgainstKnown(known, cp, (m, n) => client.consistencyProof(m, n));

    let log: LeafHashLog | null = null;
    if (blocks) {
      log = await verifyLeaves(blocks, cp, opts, client, out, reporter);
      // Offline, the prefix of the (now proven) leaves is the old tree. An export older
      // than what was verified before is simply old, not a rollback, but says nothing new.
      if (known && !client && cp.size >= known.size) await checkAgainstKnown(known, cp, null, log);
      else if (known && !client) warn(`this export (size ${cp.size}) is older than checkpoint ${known.size} verified before`);
    }
    if (client) out.proofs_verified = await checkInclusionProofs(client, cp, log, opts);

    if (opts.statePath && (!known || cp.size >= known.size)) {
      state[cp.origin] = {
        size: cp.size,
        root: cp.root.toString('base64'),
        note,
        source: opts.url ?? opts.file!,
        verified_at: new Date().toISOString(),
      };
      await writeState(opts.statePath, state);
    }
    out.ok = true;
    const root = `${cp.size} (${cp.root.toString('base64')})`;
    out.message = blocks
      ? `verified ${out.leaves_verified} leaves against checkpoint ${root}`
      : `verified checkpoint ${root} and ${out.proofs_verified} inclusion proofs; leaves not downloaded (pass --token to verify every leaf)`;
  } catch (caught) {
    const error =
      (caught as NodeJS.ErrnoException).code && !(caught instanceof VerifyError) ? unreadable('file', caught) : caught;
    if (!(error instanceof VerifyError)) throw error;
    out.ok = false;
    out.problem = error.problem as VerifyProblem;
    out.message = error.message;
    if (error.index !== undefined) out.first_bad_index = error.index;
  } finally {
    // Stops reading a file or response abandoned after an error.
    await blocks?.return(undefined).catch(() => {});
  }
  return out;
}

/** A local file that cannot be read (missing, no permission, not JSON) is a usage problem. */
function unreadable(what: string, error: unknown): VerifyError {
  return new VerifyError('usage', `cannot read the ${what}: ${(error as Error).message}`);
}

async function resolveKey(opts: VerifyOptions, client: LedgerClient | null, warn: (m: string) => void) {
  let text = opts.publicKey;
  if (!text && opts.trustServerKey && client) {
    text = (await client.publicKey()).verifier_key;
    warn('trusting the public key served by the server (--trust-server-key): this only shows the log agrees with itself');
  }
  if (!text) throw new VerifyError('usage', "--public-key is required (the instance's verifier key, from a source you trust)");
  try {
    return parseVerifierKey(text);
  } catch (error) {
    throw new VerifyError('usage', `--public-key: ${(error as Error).message}`);
  }
}

/** Splits the header (first) line off the blocks. */
async function takeHeaderLine(blocks: AsyncGenerator<Buffer>): Promise<{ line: string; rest: AsyncGenerator<Buffer> }> {
  const first = await blocks.next();
  const block = first.done ? Buffer.alloc(0) : first.value;
  const nl = block.indexOf(10);
  if (block.length === 0 || nl === 0) throw new VerifyError('malformed', 'the export has no header line');
  const remainder = nl === -1 ? Buffer.alloc(0) : block.subarray(nl + 1);
  // yield* hands return() on to the stream, so stopping early closes the file or response.
  const rest = (async function* () {
    if (remainder.length > 0) yield remainder;
    yield* blocks;
  })();
  return { line: block.toString('utf8', 0, nl === -1 ? block.length : nl), rest };
}

function parseHeader(line: string): string {
  let header: { checkpoint?: unknown; from?: unknown; to?: unknown; size?: unknown };
  try {
    header = JSON.parse(line) as typeof header;
  } catch {
    throw new VerifyError('malformed', 'the export header is not JSON');
  }
  if (typeof header.checkpoint !== 'string') throw new VerifyError('malformed', 'the export header has no checkpoint');
  if (header.from !== 0 || header.to !== header.size) {
    throw new VerifyError(
      'malformed',
      'this is a partial export (from/to); only a whole export can be checked against a checkpoint',
    );
  }
  return header.checkpoint;
}

async function verifyLeaves(
  blocks: AsyncGenerator<Buffer>,
  cp: ParsedCheckpoint,
  opts: VerifyOptions,
  client: LedgerClient | null,
  out: VerifyOutcome,
  reporter: VerifyReporter,
): Promise<LeafHashLog> {
  const log = new LeafHashLog(cp.size);
  const every = opts.progressEvery ?? 100_000;
  const tally: ContentTally = { verified: 0 };
  const parallel = opts.parallel ?? (cp.size >= PARALLEL_FROM && os.availableParallelism() > 1);
  const checker = parallel ? workerContentChecker(tally) : inlineContentChecker(tally);
  try {
    const hash = Buffer.alloc(32);
    for await (const block of blocks) {
      const batch = new ContentBatch(block, log);
      forEachLine(block, (start, end) => {
        const i = log.size;
        if (i >= cp.size) throw new VerifyError('malformed', `the export has more leaves than checkpoint ${cp.size}`, i);
        const read = readLeafLine(block, start, end, i, hash);
        log.push(hash);
        if (typeof read === 'number') batch.add(i, start, end, read);
        else tallyResult(tally, read);
        if (log.size % every === 0)
          reporter.progress(`verified ${log.size}/${cp.size} leaves (${Math.floor((100 * log.size) / cp.size)}%)`);
      });
      await checker.submit(batch);
    }
    await checker.finish();
  } finally {
    checker.close();
  }
  if (log.size < cp.size)
    throw new VerifyError('leaf_missing', `the export stops after ${log.size} of ${cp.size} leaves`, log.size);
  out.contents_verified = tally.verified;

  if (!log.root().equals(cp.root)) {
    const located = client ? await locateFirstBadLeaf(client, log, cp) : undefined;
    const index = Math.min(located ?? Infinity, tally.error?.index ?? Infinity);
    if (Number.isFinite(index)) throw new VerifyError('root_mismatch', 'the leaves do not hash to the signed root', index);
    throw new VerifyError(
      'root_mismatch',
      'the leaves do not hash to the signed root (verify against the server with --url to locate the first bad leaf)',
    );
  }
  if (tally.error) throw tally.error;
  out.leaves_verified = log.size;
  return log;
}
