// The SQL only the run engine and its runtime run: locking runs to advance them, saving
// many runs' advances at once, concurrency-group slots, and what the sweeper looks for.
import type { Queryable } from '../../platform/db/index.js';
import { APPLY_STEP_CHANGE, STEP_CHANGE_COLUMNS, type RunRow, type RunState, type StepChange } from './runs.queries.js';

/**
 * Locks those of these runs no other transaction holds, in id order (two callers never
 * wait on each other), and answers them; a run held elsewhere is left out, not waited for.
 */
export async function lockFreeRuns(tx: Queryable, runIds: readonly string[]): Promise<RunRow[]> {
  const { rows } = await tx.query<RunRow>('SELECT * FROM runs WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE SKIP LOCKED', [
    runIds,
  ]);
  return rows;
}

/** One run's advance, as `saveAdvances` writes it. */
export interface RunAdvance {
  runId: string;
  changes: readonly StepChange[];
  state: RunState;
}

/**
 * The end of advances, in one statement: the changed steps of several runs (locked by the
 * caller) and their states (a run's `updated_at` moves even when nothing changed, so the
 * sweeper leaves it alone a while).
 */
export async function saveAdvances(tx: Queryable, advances: readonly RunAdvance[]): Promise<Map<string, RunRow>> {
  if (advances.length === 0) return new Map();
  const { rows } = await tx.query<RunRow>(
    `WITH c AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS c(run_id uuid, ${STEP_CHANGE_COLUMNS})),
     r AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS r(run_id uuid, state text)),
     steps AS (
       UPDATE run_steps s SET ${APPLY_STEP_CHANGE}
         FROM c WHERE s.run_id = c.run_id AND s.key = c.key
       RETURNING 1)
     UPDATE runs u SET state = r.state, updated_at = now(),
            finished_at = CASE WHEN r.state IN ('passed', 'failed', 'canceled') THEN coalesce(u.finished_at, now()) ELSE NULL END
       FROM r WHERE u.id = r.run_id RETURNING u.*`,
    [
      JSON.stringify(advances.flatMap((a) => a.changes.map((c) => ({ run_id: a.runId, ...c })))),
      JSON.stringify(advances.map((a) => ({ run_id: a.runId, state: a.state }))),
    ],
  );
  return new Map(rows.map((row) => [row.id, row]));
}

/**
 * Serializes the concurrency check of one group across runs and replicas, for the rest of
 * the transaction, then counts the group's steps that hold a slot.
 */
export async function lockConcurrencyGroup(tx: Queryable, orgId: string, group: string): Promise<number> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`cairn:concurrency:${orgId}:${group}`]);
  const { rows } = await tx.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM run_steps
      WHERE org_id = $1 AND concurrency_group = $2 AND state IN ('running', 'blocked')`,
    [orgId, group],
  );
  return rows[0]!.n;
}

/** Runs with a step waiting for a slot of `group`, oldest first. */
export async function runsWaitingForGroup(db: Queryable, orgId: string, group: string, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ run_id: string }>(
    `SELECT s.run_id FROM run_steps s JOIN runs r ON r.id = s.run_id
      WHERE s.org_id = $1 AND s.concurrency_group = $2 AND s.state = 'waiting' AND s.reason = 'concurrency'
      GROUP BY s.run_id, r.created_at ORDER BY r.created_at LIMIT $3`,
    [orgId, group, limit],
  );
  return rows.map((r) => r.run_id);
}

/** Unfinished runs nothing has moved for `idleSeconds`: the sweeper advances them. */
export async function idleActiveRuns(db: Queryable, idleSeconds: number, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM runs WHERE state IN ('running', 'blocked') AND updated_at < now() - make_interval(secs => $1)
      ORDER BY updated_at LIMIT $2`,
    [idleSeconds, limit],
  );
  return rows.map((r) => r.id);
}
