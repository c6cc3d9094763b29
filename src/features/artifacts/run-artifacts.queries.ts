// Reads of a run's artifacts by step (the hand-off of files between steps): the step comes
// from the job that uploaded each artifact, and only the latest upload of a path per step
// counts (a retried attempt's file replaces the earlier attempt's).
import type { Queryable } from '../../platform/db/index.js';
import type { ArtifactRow } from './artifacts.queries.js';

export type StepArtifactRow = ArtifactRow & { step_key: string };

export interface RunArtifactFilter {
  orgId: string;
  runId: string;
  step?: string;
  path?: string;
  /** Paths starting with this (a directory, say `dist/`). */
  prefix?: string;
  after?: { step: string; path: string };
  limit: number;
}

export async function listRunArtifacts(db: Queryable, f: RunArtifactFilter): Promise<StepArtifactRow[]> {
  const { rows } = await db.query<StepArtifactRow>(
    `SELECT DISTINCT ON (j.step_key, a.path) a.*, j.step_key
       FROM artifacts a JOIN all_jobs j ON j.id = a.job_id
      WHERE a.org_id = $1 AND a.run_id = $2 AND j.step_key IS NOT NULL
        AND ($3::text IS NULL OR j.step_key = $3)
        AND ($4::text IS NULL OR a.path = $4)
        AND ($5::text IS NULL OR starts_with(a.path, $5))
        AND ($6::text IS NULL OR (j.step_key, a.path) > ($6, $7::text))
      ORDER BY j.step_key, a.path, a.created_at DESC, a.attempt DESC
      LIMIT $8`,
    [f.orgId, f.runId, f.step ?? null, f.path ?? null, f.prefix ?? null, f.after?.step ?? null, f.after?.path ?? null, f.limit],
  );
  return rows;
}
