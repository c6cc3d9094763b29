// Retention of logs and artifacts, run by the queue's maintenance leader right after it
// prunes the job history: logs and artifacts of jobs that history no longer holds go, then
// blobs that no artifact names any more, then temporary files abandoned by crashed uploads.
import type { BlobStore } from '../../platform/blobs.js';
import type { Db } from '../../platform/db/index.js';
import { pruneLogs } from '../logs/logs.queries.js';
import { blobIsReferenced, dropBlobCandidate, lockBlob, nextBlobCandidates, pruneArtifacts } from './artifacts.queries.js';

const LOGS_PER_STATEMENT = 200;
const ARTIFACTS_PER_STATEMENT = 1_000;
const BLOBS_PER_BATCH = 200;
/** An upload in progress writes its temporary file continuously; a day-old one is abandoned. */
const TEMP_MAX_AGE_MS = 86_400_000;

export interface RetentionReport {
  logs: number;
  artifacts: number;
  blobs: number;
  temp_files: number;
}

/** Deletes each queued blob that no artifact names, under the same per-hash lock uploads take. */
export async function collectBlobs(db: Db, blobs: BlobStore): Promise<number> {
  let deleted = 0;
  for (;;) {
    const candidates = await nextBlobCandidates(db, BLOBS_PER_BATCH);
    for (const sha256 of candidates) {
      await db.transaction(async (tx) => {
        await lockBlob(tx, sha256);
        // Deleting the file inside the transaction: if the commit then fails, the candidate
        // stays queued and the next pass deletes nothing more (deleting is idempotent).
        if (!(await blobIsReferenced(tx, sha256)) && (await blobs.delete(sha256))) deleted++;
        await dropBlobCandidate(tx, sha256);
      });
    }
    if (candidates.length < BLOBS_PER_BATCH) return deleted;
  }
}

export async function pruneLogsAndArtifacts(db: Db, blobs: BlobStore, cutoff: Date): Promise<RetentionReport> {
  const report: RetentionReport = { logs: 0, artifacts: 0, blobs: 0, temp_files: 0 };
  // Bounded statements until nothing is left, so no single one locks a large part of a table.
  for (;;) {
    const n = await pruneLogs(db, cutoff, LOGS_PER_STATEMENT);
    report.logs += n;
    if (n === 0) break;
  }
  for (;;) {
    const n = await pruneArtifacts(db, cutoff, ARTIFACTS_PER_STATEMENT);
    report.artifacts += n;
    if (n === 0) break;
  }
  report.blobs = await collectBlobs(db, blobs);
  report.temp_files = await blobs.sweepTemp(TEMP_MAX_AGE_MS);
  return report;
}
