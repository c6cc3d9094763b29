// Statements behind a project's (or a run's) artifacts as a whole: the summary, the
// entries of a ZIP bundle in keyset pages, and deletions that queue their blobs for the
// garbage collector (blob_gc_candidates, collected by artifacts.retention.ts).
import type { Queryable } from '../../platform/db/index.js';

export interface ArtifactTotals {
  count: number;
  bytes: number;
}

export interface RunTotals extends ArtifactTotals {
  run_id: string;
  run_number: number;
}

type Counted = { count: number | string; bytes: number | string | null };
const totals = (r: Counted | undefined): ArtifactTotals => ({ count: Number(r?.count ?? 0), bytes: Number(r?.bytes ?? 0) });

/** Everything stored for the project (or one run): every attempt's upload counts. */
export async function artifactTotals(
  db: Queryable,
  f: { orgId: string; projectId: string; runId?: string; withoutRun?: boolean },
): Promise<ArtifactTotals> {
  const { rows } = await db.query<Counted>(
    `SELECT count(*)::int AS count, coalesce(sum(size), 0)::bigint AS bytes FROM artifacts
      WHERE org_id = $1 AND project_id = $2 AND ($3::uuid IS NULL OR run_id = $3) AND (NOT $4 OR run_id IS NULL)`,
    [f.orgId, f.projectId, f.runId ?? null, f.withoutRun ?? false],
  );
  return totals(rows[0]);
}

/** Per run, newest run first, in keyset pages by run number. */
export async function totalsByRun(
  db: Queryable,
  f: { orgId: string; projectId: string; beforeNumber?: number; limit: number },
): Promise<RunTotals[]> {
  const { rows } = await db.query<Counted & { run_id: string; run_number: number }>(
    `SELECT a.run_id, r.number AS run_number, count(*)::int AS count, sum(a.size)::bigint AS bytes
       FROM artifacts a JOIN runs r ON r.id = a.run_id
      WHERE a.org_id = $1 AND a.project_id = $2 AND ($3::int IS NULL OR r.number < $3)
      GROUP BY a.run_id, r.number ORDER BY r.number DESC LIMIT $4`,
    [f.orgId, f.projectId, f.beforeNumber ?? null, f.limit],
  );
  return rows.map((r) => ({ run_id: r.run_id, run_number: r.run_number, ...totals(r) }));
}

export interface BundleEntry {
  id: string;
  sha256: string;
  size: number;
  path: string;
  content_type: string;
  created_at: Date;
  job_id: string;
  /** 0 for artifacts of jobs outside any run. */
  run_number: number;
  /** The step key, or the job id when there is no step (or the key cannot be a folder name). */
  grp: string;
}

export interface BundleCursor {
  runNumber: number;
  grp: string;
  path: string;
}

// The group of an artifact inside the bundle, and its run number (0: no run).
const GROUP = `CASE WHEN a.run_id IS NULL OR j.step_key IS NULL OR j.step_key IN ('.', '..') THEN a.job_id::text ELSE j.step_key END`;
const RUN_NUMBER = 'coalesce(r.number, 0)';

/**
 * One page of a bundle's entries in name order: the latest upload of each path per step
 * (a retried attempt's file replaces the earlier one's, as in the run's artifact list).
 */
export async function bundleEntries(
  db: Queryable,
  f: { orgId: string; projectId: string; runId?: string; after?: BundleCursor; limit: number },
): Promise<BundleEntry[]> {
  const { rows } = await db.query<BundleEntry>(
    `SELECT DISTINCT ON (${RUN_NUMBER}, ${GROUP}, a.path)
            a.id, a.sha256, a.size, a.path, a.content_type, a.created_at, a.job_id,
            ${RUN_NUMBER} AS run_number, ${GROUP} AS grp
       FROM artifacts a
       LEFT JOIN runs r ON r.id = a.run_id
       LEFT JOIN all_jobs j ON j.id = a.job_id
      WHERE a.org_id = $1 AND a.project_id = $2 AND ($3::uuid IS NULL OR a.run_id = $3)
        AND ($4::int IS NULL OR (${RUN_NUMBER}, ${GROUP}, a.path) > ($4, $5::text, $6::text))
      ORDER BY ${RUN_NUMBER}, ${GROUP}, a.path, a.created_at DESC, a.attempt DESC
      LIMIT $7`,
    [f.orgId, f.projectId, f.runId ?? null, f.after?.runNumber ?? null, f.after?.grp ?? null, f.after?.path ?? null, f.limit],
  );
  return rows.map((r) => ({ ...r, size: Number(r.size) }));
}

export interface DeletedArtifacts {
  org_id: string;
  count: number;
  bytes: number;
}

/** Deletes up to `limit` of the project's artifacts; their blobs become candidates in the same statement. */
export async function deleteProjectArtifacts(
  tx: Queryable,
  orgId: string,
  projectId: string,
  limit: number,
): Promise<ArtifactTotals> {
  const { rows } = await tx.query<Counted>(
    `WITH gone AS (
       DELETE FROM artifacts WHERE id IN (SELECT id FROM artifacts WHERE org_id = $1 AND project_id = $2 LIMIT $3)
       RETURNING sha256, size),
     queued AS (
       INSERT INTO blob_gc_candidates (sha256) SELECT DISTINCT sha256 FROM gone ON CONFLICT DO NOTHING RETURNING 1)
     SELECT count(*)::int AS count, coalesce(sum(size), 0)::bigint AS bytes FROM gone`,
    [orgId, projectId, limit],
  );
  return totals(rows[0]);
}

/**
 * Retention by age: artifacts uploaded before the cutoff (of one organization, or all),
 * except those of jobs still in the live queue (a running pipeline may still read them).
 * Answers what went per organization, for their audit trails.
 */
export async function deleteArtifactsBefore(
  tx: Queryable,
  f: { orgId?: string; cutoff: Date; limit: number },
): Promise<DeletedArtifacts[]> {
  const { rows } = await tx.query<Counted & { org_id: string }>(
    `WITH gone AS (
       DELETE FROM artifacts a WHERE a.id IN (
         SELECT x.id FROM artifacts x
          WHERE ($1::uuid IS NULL OR x.org_id = $1) AND x.created_at < $2
            AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = x.job_id)
          LIMIT $3)
       RETURNING a.org_id, a.sha256, a.size),
     queued AS (
       INSERT INTO blob_gc_candidates (sha256) SELECT DISTINCT sha256 FROM gone ON CONFLICT DO NOTHING RETURNING 1)
     SELECT org_id, count(*)::int AS count, coalesce(sum(size), 0)::bigint AS bytes FROM gone GROUP BY org_id`,
    [f.orgId ?? null, f.cutoff, f.limit],
  );
  return rows.map((r) => ({ org_id: r.org_id, ...totals(r) }));
}
