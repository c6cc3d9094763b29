// Statistics reads and the roll-up writes behind queue.stats.ts.
import type { Queryable } from '../../platform/db/index.js';

/** One pool and priority's counters and histograms (a minute's delta, or a sum of minutes). */
export interface StatsSumRow {
  pool_id: string;
  priority: number;
  completed: number;
  failed: number;
  dead_lettered: number;
  canceled: number;
  timed_out: number;
  retried: number;
  wait_count: number;
  wait_sum_ms: number;
  wait_buckets: number[];
  exec_count: number;
  exec_sum_ms: number;
  exec_buckets: number[];
}

export interface QueueStatsDelta extends StatsSumRow {
  org_id: string;
  minute: Date;
}

const COUNTERS = ['completed', 'failed', 'dead_lettered', 'canceled', 'timed_out', 'retried'] as const;

/** Adds counts to the minute rows, one statement for the whole batch. */
export async function addQueueStats(db: Queryable, deltas: readonly QueueStatsDelta[]): Promise<void> {
  const addArrays = (column: string) =>
    `(SELECT array_agg(coalesce(a, 0) + coalesce(b, 0) ORDER BY i)
        FROM unnest(queue_stats.${column}, EXCLUDED.${column}) WITH ORDINALITY AS t(a, b, i))`;
  await db.query(
    `INSERT INTO queue_stats AS queue_stats (org_id, pool_id, priority, minute, ${COUNTERS.join(', ')},
                             wait_count, wait_sum_ms, wait_buckets, exec_count, exec_sum_ms, exec_buckets)
     SELECT org_id, pool_id, priority, minute, ${COUNTERS.join(', ')},
            wait_count, wait_sum_ms, wait_buckets, exec_count, exec_sum_ms, exec_buckets
       FROM jsonb_to_recordset($1::jsonb) AS x(org_id uuid, pool_id uuid, priority smallint, minute timestamptz,
            completed int, failed int, dead_lettered int, canceled int, timed_out int, retried int,
            wait_count int, wait_sum_ms bigint, wait_buckets int[], exec_count int, exec_sum_ms bigint, exec_buckets int[])
     ON CONFLICT (org_id, pool_id, priority, minute) DO UPDATE SET
       ${COUNTERS.map((c) => `${c} = queue_stats.${c} + EXCLUDED.${c}`).join(', ')},
       wait_count = queue_stats.wait_count + EXCLUDED.wait_count,
       wait_sum_ms = queue_stats.wait_sum_ms + EXCLUDED.wait_sum_ms,
       wait_buckets = ${addArrays('wait_buckets')},
       exec_count = queue_stats.exec_count + EXCLUDED.exec_count,
       exec_sum_ms = queue_stats.exec_sum_ms + EXCLUDED.exec_sum_ms,
       exec_buckets = ${addArrays('exec_buckets')}`,
    [JSON.stringify(deltas.map((d) => ({ ...d, minute: d.minute.toISOString() })))],
  );
}

/** Counters and histograms summed per pool and priority over the minute rows since `since`. */
export async function sumQueueStats(db: Queryable, orgId: string, since: Date | null, poolId?: string): Promise<StatsSumRow[]> {
  const sumBuckets = (column: string) => `
    SELECT pool_id, priority, array_agg(total ORDER BY i) AS ${column}
      FROM (SELECT w.pool_id, w.priority, u.i, sum(u.n)::int AS total
              FROM w, unnest(w.${column}) WITH ORDINALITY AS u(n, i)
             GROUP BY 1, 2, 3) per_bucket
     GROUP BY 1, 2`;
  const { rows } = await db.query<StatsSumRow>(
    `WITH w AS (
       SELECT * FROM queue_stats
        WHERE org_id = $1 AND ($2::timestamptz IS NULL OR minute >= $2) AND ($3::uuid IS NULL OR pool_id = $3)),
     scalars AS (
       SELECT pool_id, priority, ${COUNTERS.map((c) => `sum(${c})::int AS ${c}`).join(', ')},
              sum(wait_count)::int AS wait_count, sum(wait_sum_ms)::float8 AS wait_sum_ms,
              sum(exec_count)::int AS exec_count, sum(exec_sum_ms)::float8 AS exec_sum_ms
         FROM w GROUP BY 1, 2),
     waits AS (${sumBuckets('wait_buckets')}),
     execs AS (${sumBuckets('exec_buckets')})
     SELECT * FROM scalars JOIN waits USING (pool_id, priority) JOIN execs USING (pool_id, priority)`,
    [orgId, since, poolId ?? null],
  );
  return rows;
}

export interface LiveCountRow {
  pool_id: string;
  priority: number;
  state: string;
  jobs: number;
}

/** Jobs in flight by pool, priority and state: the live table only, small by design. */
export async function liveCounts(db: Queryable, orgId: string, poolId?: string): Promise<LiveCountRow[]> {
  const { rows } = await db.query<LiveCountRow>(
    `SELECT pool_id, priority, state, count(*)::int AS jobs FROM jobs
      WHERE org_id = $1 AND ($2::uuid IS NULL OR pool_id = $2)
      GROUP BY pool_id, priority, state`,
    [orgId, poolId ?? null],
  );
  return rows;
}

/** Instance-wide counts for /metrics: unfinished jobs by state and priority, agents by status. */
export async function instanceLiveFigures(db: Queryable) {
  const [jobs, agents] = await Promise.all([
    db.query<{ state: string; priority: number; n: number }>(
      'SELECT state, priority, count(*)::int AS n FROM jobs GROUP BY state, priority',
    ),
    db.query<{ status: string; n: number }>(
      "SELECT status, count(*)::int AS n FROM agents WHERE status <> 'stopped' GROUP BY status",
    ),
  ]);
  return { jobs: jobs.rows, agents: agents.rows };
}
