// A ZIP of many blobs, streamed: entries are read from the database a page at a time and
// each blob is opened only when the ZIP writer reaches it (yazl's lazy streams), so memory
// holds one read buffer, a page of pending entries and the central directory (~100 bytes
// per entry, which ZIP needs at the end) — never a file, never the archive.
import type { ReadStream } from 'node:fs';
import type { PassThrough } from 'node:stream';
import { type Readable } from 'node:stream';
import yazl from 'yazl';
import type { BlobStore } from '../../platform/blobs.js';
import type { BundleCursor, BundleEntry } from './bundles.queries.js';

const PAGE = 200;
/** Fetch the next page when fewer entries than this wait for the writer. */
const LOW_WATER = 50;

// Text compresses well; archives, images and binaries would only cost CPU. Many text files
// are stored as application/octet-stream (the type is guessed from a short list), hence
// the extensions.
const TEXT_TYPE = /^text\/|json|xml|svg/;
const TEXT_EXTENSION =
  /\.(js|mjs|cjs|ts|tsx|jsx|css|map|ya?ml|toml|ini|cfg|conf|sh|py|rb|go|rs|java|kt|c|h|cpp|sql|lock|sarif|lcov|info|diff|patch|out)$/i;

function compressible(e: Pick<BundleEntry, 'content_type' | 'path'>): boolean {
  return TEXT_TYPE.test(e.content_type) || TEXT_EXTENSION.test(e.path);
}

export function entryName(e: Pick<BundleEntry, 'run_number' | 'grp' | 'path'>): string {
  return e.run_number === 0 ? `jobs/${e.grp}/${e.path}` : `${e.run_number}/${e.grp}/${e.path}`;
}

export interface BundleSource {
  blobs: BlobStore;
  /** A page of entries after the cursor, in name order. */
  page(after: BundleCursor | undefined, limit: number): Promise<BundleEntry[]>;
}

/**
 * The archive as a stream. A failure after the first byte (a blob missing from storage, the
 * database gone) can only end the stream with an error: the client sees a cut download,
 * never a ZIP silently missing a file.
 */
export function streamBundle(source: BundleSource, log?: { warn(obj: object, msg: string): void }): Readable {
  const zip = new yazl.ZipFile();
  const out = zip.outputStream as PassThrough;
  let closed = false;
  let reading: ReadStream | null = null;
  let pending = 0;
  let wake: (() => void) | null = null;

  const fail = (error: unknown) => {
    if (closed) return;
    log?.warn({ err: error }, 'artifact bundle failed while streaming');
    out.destroy(error instanceof Error ? error : new Error(String(error)));
  };
  zip.on('error', fail);
  // The client went away (or we failed): stop reading blobs and the database.
  out.on('close', () => {
    closed = true;
    reading?.destroy();
    wake?.();
  });

  const started = () => {
    pending--;
    if (pending < LOW_WATER) wake?.();
  };

  const produce = async () => {
    let after: BundleCursor | undefined;
    for (;;) {
      while (pending >= LOW_WATER && !closed) await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
      if (closed) return;
      const rows = await source.page(after, PAGE);
      for (const row of rows) {
        pending++;
        zip.addReadStreamLazy(
          entryName(row),
          { size: row.size, mtime: row.created_at, compress: compressible(row) },
          (callback) => {
            started();
            source.blobs.open(row.sha256).then(
              (stream) => {
                reading = stream;
                callback(null, stream);
              },
              (error: unknown) => callback(error, null as unknown as ReadStream),
            );
          },
        );
      }
      const last = rows.at(-1);
      if (rows.length < PAGE || !last) {
        zip.end();
        return;
      }
      after = { runNumber: last.run_number, grp: last.grp, path: last.path };
    }
  };
  produce().catch(fail);
  return out;
}
