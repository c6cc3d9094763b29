// Every SQL statement of artifacts and of the blobs behind them (migrations/0006_logs_artifacts.sql).
import type { Queryable } from '../../platform/db/index.js';

export interface ArtifactRow {
  id: string;
  org_id: string;
  job_id: string;
  attempt: number;
  project_id: string | null;
  run_id: string | null;
  path: string;
  size: number;
  sha256: string;
  content_type: string;
  agent_id: string | null;
  created_at: Date;
}

// Advisory-lock class of blob hashes ("cblb"); the two-key form keeps these apart from the
// single-key locks of LOCK_KEYS.
const BLOB_LOCK_CLASS = 0x63626c62;

/**
 * Serializes, per content hash, making a blob visible with its artifact row (upload) and
 * deleting a blob no row names (garbage collection): neither can slip between the other's
 * check and act. Released at the end of the transaction.
 */
export async function lockBlob(tx: Queryable, sha256: string): Promise<void> {
  await tx.query('SELECT true AS locked FROM pg_advisory_xact_lock($1::int, hashtext($2::text))', [BLOB_LOCK_CLASS, sha256]);
}

/** Removes the artifact at this path of this attempt (an upload replaces it). */
export async function deleteArtifactAt(
  tx: Queryable,
  jobId: string,
  attempt: number,
  path: string,
): Promise<{ id: string; sha256: string } | undefined> {
  const { rows } = await tx.query<{ id: string; sha256: string }>(
    'DELETE FROM artifacts WHERE job_id = $1 AND attempt = $2 AND path = $3 RETURNING id, sha256',
    [jobId, attempt, path],
  );
  return rows[0];
}

export async function insertArtifact(tx: Queryable, a: Omit<ArtifactRow, 'created_at'>): Promise<ArtifactRow> {
  const { rows } = await tx.query<ArtifactRow>(
    `INSERT INTO artifacts (id, org_id, job_id, attempt, project_id, run_id, path, size, sha256, content_type, agent_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *`,
    [a.id, a.org_id, a.job_id, a.attempt, a.project_id, a.run_id, a.path, a.size, a.sha256, a.content_type, a.agent_id],
  );
  return rows[0]!;
}

/** Blobs that may have lost their last artifact, for the garbage collector to check. */
export async function queueBlobCandidates(db: Queryable, sha256s: readonly string[]): Promise<void> {
  if (sha256s.length === 0) return;
  await db.query('INSERT INTO blob_gc_candidates (sha256) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [sha256s]);
}

export async function findArtifact(db: Queryable, orgId: string, id: string): Promise<ArtifactRow | undefined> {
  const { rows } = await db.query<ArtifactRow>('SELECT * FROM artifacts WHERE org_id = $1 AND id = $2', [orgId, id]);
  return rows[0];
}

/** A job's artifacts by attempt then path, in keyset pages. */
export async function listJobArtifacts(
  db: Queryable,
  f: { orgId: string; jobId: string; attempt?: number; after?: { attempt: number; path: string }; limit: number },
): Promise<ArtifactRow[]> {
  const { rows } = await db.query<ArtifactRow>(
    `SELECT * FROM artifacts
      WHERE org_id = $1 AND job_id = $2
        AND ($3::int IS NULL OR attempt = $3)
        AND ($4::int IS NULL OR (attempt, path) > ($4, $5::text))
      ORDER BY attempt, path LIMIT $6`,
    [f.orgId, f.jobId, f.attempt ?? null, f.after?.attempt ?? null, f.after?.path ?? null, f.limit],
  );
  return rows;
}

/**
 * Retention: artifacts uploaded before the cutoff whose job is gone from both the live
 * queue and the history. Their blobs become candidates in the same statement. Bounded.
 */
export async function pruneArtifacts(db: Queryable, cutoff: Date, limit: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `WITH gone AS (
       DELETE FROM artifacts a WHERE a.id IN (
         SELECT x.id FROM artifacts x
          WHERE x.created_at < $1
            AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = x.job_id)
            AND NOT EXISTS (SELECT 1 FROM job_history h WHERE h.id = x.job_id)
          LIMIT $2)
       RETURNING a.sha256),
     queued AS (
       INSERT INTO blob_gc_candidates (sha256) SELECT DISTINCT sha256 FROM gone ON CONFLICT DO NOTHING RETURNING 1)
     SELECT (SELECT count(*) FROM gone)::int AS n, (SELECT count(*) FROM queued)::int AS queued`,
    [cutoff, limit],
  );
  return rows[0]?.n ?? 0;
}

export async function nextBlobCandidates(db: Queryable, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ sha256: string }>('SELECT sha256 FROM blob_gc_candidates ORDER BY queued_at LIMIT $1', [
    limit,
  ]);
  return rows.map((r) => r.sha256);
}

export async function blobIsReferenced(tx: Queryable, sha256: string): Promise<boolean> {
  const { rows } = await tx.query<{ used: boolean }>('SELECT EXISTS (SELECT 1 FROM artifacts WHERE sha256 = $1) AS used', [
    sha256,
  ]);
  return rows[0]?.used === true;
}

export async function dropBlobCandidate(tx: Queryable, sha256: string): Promise<void> {
  await tx.query('DELETE FROM blob_gc_candidates WHERE sha256 = $1', [sha256]);
}
