// The blob store: files on a filesystem, named by the SHA-256 of their content
// (`<dir>/sha256/ab/cd/<hex>`), so equal content is stored once and a name can never point
// at other bytes. Every replica must see the same directory (CAIRN_BLOB_DIR on a shared
// volume when running several). Writes go to `<dir>/tmp` (same filesystem) while hashing,
// are flushed, then renamed into place: a reader sees a whole blob or none.
//
// Deleting a blob while someone commits the same content would lose it, so callers
// serialize `commit` and `delete` of one hash (the artifacts feature does it with a
// PostgreSQL advisory lock); the store itself only guarantees atomic files.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Transform, finished, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppError } from './errors.js';

export interface BlobInfo {
  /** Lower-case hex. */
  sha256: string;
  size: number;
}

/** A blob written and hashed, not yet visible under its name. */
export interface StagedBlob extends BlobInfo {
  /** Moves it into place (or drops it when that content is already stored). */
  commit(): Promise<void>;
  /** Removes the temporary file; harmless after commit. */
  discard(): Promise<void>;
}

export class BlobTooLargeError extends AppError {
  constructor(readonly maxBytes: number) {
    super(413, 'too_large', 'Payload too large', `The content exceeds the limit of ${maxBytes} bytes.`, { max_bytes: maxBytes });
  }
}

export interface BlobStore {
  readonly dir: string;
  /** Streams `source` to a temporary file while hashing; refuses past `maxBytes` (and removes the file). */
  stage(source: Readable, opts?: { maxBytes?: number }): Promise<StagedBlob>;
  /** stage + commit. */
  put(source: Readable, opts?: { maxBytes?: number }): Promise<BlobInfo>;
  /** Opens a blob for reading; rejects with code ENOENT when it is not stored (before any byte is sent). */
  open(sha256: string): Promise<ReadStream>;
  has(sha256: string): Promise<boolean>;
  /** True when a file was removed. */
  delete(sha256: string): Promise<boolean>;
  /** Removes temporary files older than `olderThanMs` (left by crashes mid-upload). */
  sweepTemp(olderThanMs: number): Promise<number>;
}

const HEX = /^[0-9a-f]{64}$/;

function checkHash(sha256: string): string {
  // The hash becomes a path: anything but 64 hex digits could escape the directory.
  if (!HEX.test(sha256)) throw new Error(`not a SHA-256 hex digest: ${sha256.slice(0, 80)}`);
  return sha256;
}

/** Counts and hashes what flows through; fails the stream past the limit. */
function meter(maxBytes: number) {
  const hash = createHash('sha256');
  let size = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > maxBytes) return done(new BlobTooLargeError(maxBytes));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  return { stream, result: () => ({ sha256: hash.digest('hex'), size }) };
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename itself durable; some platforms cannot open directories, which is fine.
  const handle = await open(dir, 'r').catch(() => null);
  if (!handle) return;
  try {
    await handle.sync();
  } catch {
    // not supported here
  } finally {
    await handle.close();
  }
}

export function createBlobStore(dir: string): BlobStore {
  const root = path.resolve(dir);
  const tmpDir = path.join(root, 'tmp');
  const pathOf = (sha256: string) => path.join(root, 'sha256', sha256.slice(0, 2), sha256.slice(2, 4), checkHash(sha256));

  async function stage(source: Readable, opts: { maxBytes?: number } = {}): Promise<StagedBlob> {
    await mkdir(tmpDir, { recursive: true });
    const tmp = path.join(tmpDir, `${randomUUID()}.part`);
    const counter = meter(opts.maxBytes ?? Number.MAX_SAFE_INTEGER);
    const discard = () => rm(tmp, { force: true });
    // The source is piped rather than part of the pipeline: on a refusal, pipeline would
    // destroy it, and destroying a request kills the socket before the 413 can be sent.
    const stopWatching = finished(source, { writable: false }, (error) => {
      if (error) counter.stream.destroy(error);
    });
    // `flush` fsyncs before close: an acknowledged upload survives a crash.
    const file = createWriteStream(tmp, { flags: 'wx', flush: true });
    try {
      source.pipe(counter.stream);
      await pipeline(counter.stream, file);
    } catch (error) {
      source.unpipe(counter.stream);
      source.resume(); // drain the rest of a refused request so the answer can still be sent
      // pipeline rejects as soon as a stream fails, maybe before the file is even open;
      // removed before it closes, the file would come back when the open completes.
      if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()));
      await discard();
      throw error;
    } finally {
      stopWatching();
    }
    const info = counter.result();
    let committed = false;
    return {
      ...info,
      discard: async () => {
        if (!committed) await discard();
      },
      async commit() {
        const final = pathOf(info.sha256);
        if (await exists(final)) {
          await discard();
        } else {
          await mkdir(path.dirname(final), { recursive: true });
          await rename(tmp, final);
          await syncDir(path.dirname(final));
        }
        committed = true;
      },
    };
  }

  async function exists(file: string): Promise<boolean> {
    try {
      return (await stat(file)).isFile();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
  }

  return {
    dir: root,
    stage,
    async put(source, opts) {
      const staged = await stage(source, opts);
      await staged.commit();
      return { sha256: staged.sha256, size: staged.size };
    },
    async open(sha256) {
      const stream = createReadStream(pathOf(sha256));
      return new Promise<ReadStream>((resolve, reject) => {
        stream.once('open', () => {
          stream.off('error', reject);
          resolve(stream);
        });
        stream.once('error', reject);
      });
    },
    async has(sha256) {
      return exists(pathOf(sha256));
    },
    async delete(sha256) {
      try {
        await unlink(pathOf(sha256));
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw error;
      }
    },
    async sweepTemp(olderThanMs) {
      const names = await readdir(tmpDir).catch(() => [] as string[]);
      const cutoff = Date.now() - olderThanMs;
      let removed = 0;
      for (const name of names) {
        const file = path.join(tmpDir, name);
        const info = await stat(file).catch(() => null);
        if (info && info.mtimeMs < cutoff) {
          await rm(file, { force: true });
          removed++;
        }
      }
      return removed;
    },
  };
}
