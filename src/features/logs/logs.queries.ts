// Every SQL statement of job logs (migrations/0006_logs_artifacts.sql), plus the lease
// fence that the agent's log and artifact uploads share.
import type { Queryable } from '../../platform/db/index.js';

/** The job an agent may write for: leased to it under this token, still claimed or running. */
export interface LeasedJob {
  id: string;
  org_id: string;
  project_id: string | null;
  run_id: string | null;
  attempt: number;
  lease_token: string;
  cancel_requested: boolean;
}

/**
 * Finds and share-locks the job when the lease is its current one. KEY SHARE does not
 * block lease renewals (plain updates) but does hold off the statement that finishes the
 * job (a delete), so a chunk or upload accepted here lands before the job can end.
 */
export async function lockLeasedJob(
  tx: Queryable,
  f: { orgId: string; agentId: string; jobId: string; leaseToken: string },
): Promise<LeasedJob | undefined> {
  const { rows } = await tx.query<LeasedJob>(
    `SELECT id, org_id, project_id, run_id, attempt, lease_token, cancel_requested_at IS NOT NULL AS cancel_requested
       FROM jobs
      WHERE id = $1 AND org_id = $2 AND agent_id = $3 AND lease_token = $4 AND state IN ('claimed', 'running')
      FOR KEY SHARE`,
    [f.jobId, f.orgId, f.agentId, f.leaseToken],
  );
  return rows[0];
}

export interface LogHead {
  job_id: string;
  attempt: number;
  size: number;
  truncated: boolean;
}

/** The attempt's log head, created empty if needed, locked so appends to it serialize. */
export async function lockLogHead(tx: Queryable, job: LeasedJob): Promise<LogHead> {
  // DO UPDATE (not DO NOTHING) so the row comes back locked whether it was new or not.
  const { rows } = await tx.query<LogHead>(
    `INSERT INTO job_logs AS l (job_id, attempt, org_id) VALUES ($1, $2, $3)
     ON CONFLICT (job_id, attempt) DO UPDATE SET job_id = l.job_id
     RETURNING l.job_id, l.attempt, l.size, l.truncated`,
    [job.id, job.attempt, job.org_id],
  );
  return rows[0]!;
}

/** Byte length of the chunk stored at exactly `offset`, if one starts there. */
export async function chunkLengthAt(tx: Queryable, jobId: string, attempt: number, offset: number): Promise<number | undefined> {
  const { rows } = await tx.query<{ length: number }>(
    'SELECT octet_length(data) AS length FROM job_log_chunks WHERE job_id = $1 AND attempt = $2 AND byte_offset = $3',
    [jobId, attempt, offset],
  );
  return rows[0]?.length;
}

export async function appendChunk(
  tx: Queryable,
  job: LeasedJob,
  offset: number,
  data: Buffer,
  truncated: boolean,
): Promise<LogHead> {
  await tx.query('INSERT INTO job_log_chunks (job_id, attempt, byte_offset, org_id, data) VALUES ($1, $2, $3, $4, $5)', [
    job.id,
    job.attempt,
    offset,
    job.org_id,
    data,
  ]);
  const { rows } = await tx.query<LogHead>(
    `UPDATE job_logs SET size = $3, truncated = $4, updated_at = now()
      WHERE job_id = $1 AND attempt = $2
     RETURNING job_id, attempt, size, truncated`,
    [job.id, job.attempt, offset + data.length, truncated],
  );
  return rows[0]!;
}

export async function findLogHead(db: Queryable, orgId: string, jobId: string, attempt: number): Promise<LogHead | undefined> {
  const { rows } = await db.query<LogHead>(
    'SELECT job_id, attempt, size, truncated FROM job_logs WHERE org_id = $1 AND job_id = $2 AND attempt = $3',
    [orgId, jobId, attempt],
  );
  return rows[0];
}

/**
 * The log's bytes from `start` (inclusive) to `end` (exclusive), cut out of the chunks that
 * overlap the range by the database, so no more than the range crosses the wire.
 */
export async function readLogRange(db: Queryable, jobId: string, attempt: number, start: number, end: number): Promise<Buffer> {
  const { rows } = await db.query<{ piece: Uint8Array }>(
    `SELECT substring(c.data FROM greatest($3 - c.byte_offset, 0)::int + 1
                             FOR (least(c.byte_offset + octet_length(c.data), $4) - greatest(c.byte_offset, $3))::int) AS piece
       FROM job_log_chunks c
      WHERE c.job_id = $1 AND c.attempt = $2 AND c.byte_offset < $4
        AND c.byte_offset >= coalesce((SELECT max(s.byte_offset) FROM job_log_chunks s
                                        WHERE s.job_id = $1 AND s.attempt = $2 AND s.byte_offset <= $3), 0)
      ORDER BY c.byte_offset`,
    [jobId, attempt, start, end],
  );
  return Buffer.concat(rows.map((r) => Buffer.from(r.piece)));
}

/** The next few chunks after `after` (exclusive) below `below`, for streaming a whole log. */
export async function readChunks(
  db: Queryable,
  f: { jobId: string; attempt: number; after: number; below: number; limit: number },
): Promise<{ byte_offset: number; data: Uint8Array }[]> {
  const { rows } = await db.query<{ byte_offset: number; data: Uint8Array }>(
    `SELECT byte_offset, data FROM job_log_chunks
      WHERE job_id = $1 AND attempt = $2 AND byte_offset > $3 AND byte_offset < $4
      ORDER BY byte_offset LIMIT $5`,
    [f.jobId, f.attempt, f.after, f.below, f.limit],
  );
  return rows;
}

/**
 * Retention: logs last written before the cutoff whose job is gone from both the live queue
 * and the history (the history's own retention removed it). Bounded per call.
 */
export async function pruneLogs(db: Queryable, cutoff: Date, limit: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `WITH gone AS (
       DELETE FROM job_logs l WHERE (l.job_id, l.attempt) IN (
         SELECT x.job_id, x.attempt FROM job_logs x
          WHERE x.updated_at < $1
            AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = x.job_id)
            AND NOT EXISTS (SELECT 1 FROM job_history h WHERE h.id = x.job_id)
          LIMIT $2)
       RETURNING l.job_id, l.attempt),
     chunks AS (
       DELETE FROM job_log_chunks c USING gone WHERE c.job_id = gone.job_id AND c.attempt = gone.attempt RETURNING 1)
     SELECT (SELECT count(*) FROM gone)::int AS n, (SELECT count(*) FROM chunks)::int AS chunks`,
    [cutoff, limit],
  );
  return rows[0]?.n ?? 0;
}
