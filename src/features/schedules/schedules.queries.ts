// Every SQL statement of schedules and their firings (migrations/0009_schedules_webhooks.sql).
import type { Queryable } from '../../platform/db/index.js';

export interface ScheduleRow {
  id: string;
  org_id: string;
  project_id: string;
  name: string;
  cron: string;
  timezone: string;
  enabled: boolean;
  branch: string | null;
  commit: string | null;
  message: string | null;
  env: Record<string, string>;
  missed: 'skip' | 'run_once';
  next_run_at: Date | null;
  last_run_id: string | null;
  last_fired_at: Date | null;
  last_outcome: string | null;
  last_error: string | null;
  skipped_count: number;
  created_by: string;
  created_at: Date;
  updated_at: Date;
}

/** A schedule with its last run's number and state, for reads. */
export type ScheduleView = ScheduleRow & { last_run_number: number | null; last_run_state: string | null };

export interface FiringRow {
  schedule_id: string;
  due_at: Date;
  org_id: string;
  fired_at: Date;
  outcome: 'claimed' | 'started' | 'failed' | 'skipped';
  missed: number;
  run_id: string | null;
  error: string | null;
}

const VIEW = `SELECT s.*, r.number AS last_run_number, r.state AS last_run_state
                FROM schedules s
                JOIN projects p ON p.id = s.project_id AND p.deleted_at IS NULL
                LEFT JOIN runs r ON r.id = s.last_run_id`;

export type ScheduleFields = Pick<
  ScheduleRow,
  'name' | 'cron' | 'timezone' | 'enabled' | 'branch' | 'commit' | 'message' | 'env' | 'missed' | 'next_run_at'
>;

export async function insertSchedule(
  tx: Queryable,
  s: ScheduleFields & { org_id: string; project_id: string; created_by: string },
): Promise<ScheduleRow> {
  const { rows } = await tx.query<ScheduleRow>(
    `INSERT INTO schedules (org_id, project_id, name, cron, timezone, enabled, branch, commit, message, env, missed, next_run_at, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *`,
    [
      s.org_id,
      s.project_id,
      s.name,
      s.cron,
      s.timezone,
      s.enabled,
      s.branch,
      s.commit,
      s.message,
      JSON.stringify(s.env),
      s.missed,
      s.next_run_at,
      s.created_by,
    ],
  );
  return rows[0]!;
}

/** Scoped by organization; a schedule of a deleted project is gone with it. */
export async function findSchedule(
  db: Queryable,
  orgId: string,
  id: string,
  opts: { forUpdate?: boolean } = {},
): Promise<ScheduleView | undefined> {
  const { rows } = await db.query<ScheduleView>(
    `${VIEW} WHERE s.org_id = $1 AND s.id = $2${opts.forUpdate ? ' FOR UPDATE OF s' : ''}`,
    [orgId, id],
  );
  return rows[0];
}

export async function updateSchedule(tx: Queryable, id: string, s: ScheduleFields): Promise<void> {
  await tx.query(
    `UPDATE schedules SET name = $2, cron = $3, timezone = $4, enabled = $5, branch = $6, commit = $7, message = $8,
            env = $9, missed = $10, next_run_at = $11, updated_at = now()
      WHERE id = $1`,
    [id, s.name, s.cron, s.timezone, s.enabled, s.branch, s.commit, s.message, JSON.stringify(s.env), s.missed, s.next_run_at],
  );
}

export async function deleteSchedule(tx: Queryable, id: string): Promise<void> {
  await tx.query('DELETE FROM schedules WHERE id = $1', [id]);
}

export const SCHEDULE_SORTS = {
  // Schedules with nothing ahead (disabled) sort after every time.
  next_run_at: { expr: "coalesce(s.next_run_at, 'infinity'::timestamptz)", cast: 'timestamptz' },
  name: { expr: 's.name', cast: 'text' },
  created_at: { expr: 's.created_at', cast: 'timestamptz' },
} as const;
export type ScheduleSortKey = keyof typeof SCHEDULE_SORTS;

export async function listSchedules(
  db: Queryable,
  f: {
    orgId: string;
    projectId?: string;
    enabled?: boolean;
    sort: ScheduleSortKey;
    descending: boolean;
    after?: { value: string; id: string };
    limit: number;
  },
): Promise<ScheduleView[]> {
  // The sort expression comes from a fixed map, never from input.
  const { expr, cast } = SCHEDULE_SORTS[f.sort];
  const cmp = f.descending ? '<' : '>';
  const dir = f.descending ? 'DESC' : 'ASC';
  const { rows } = await db.query<ScheduleView>(
    `${VIEW}
      WHERE s.org_id = $1
        AND ($2::uuid IS NULL OR s.project_id = $2)
        AND ($3::boolean IS NULL OR s.enabled = $3)
        AND ($4::text IS NULL OR (${expr}, s.id) ${cmp} ($4::${cast}, $5::uuid))
      ORDER BY ${expr} ${dir}, s.id ${dir}
      LIMIT $6`,
    [f.orgId, f.projectId ?? null, f.enabled ?? null, f.after?.value ?? null, f.after?.id ?? null, f.limit],
  );
  return rows;
}

export async function listFirings(
  db: Queryable,
  f: { scheduleId: string; before?: string; limit: number },
): Promise<FiringRow[]> {
  const { rows } = await db.query<FiringRow>(
    `SELECT * FROM schedule_firings
      WHERE schedule_id = $1 AND ($2::timestamptz IS NULL OR due_at < $2)
      ORDER BY due_at DESC LIMIT $3`,
    [f.scheduleId, f.before ?? null, f.limit],
  );
  return rows;
}

// --- the scheduler ---

/**
 * Enabled schedules of live projects due at `now`, locked. SKIP LOCKED: a schedule another
 * scheduler is firing right now is its business; once it commits, `next_run_at` has moved on.
 */
export async function lockDueSchedules(tx: Queryable, now: Date, limit: number): Promise<ScheduleRow[]> {
  const { rows } = await tx.query<ScheduleRow>(
    `SELECT s.* FROM schedules s
      WHERE s.enabled AND s.next_run_at <= $1
        AND EXISTS (SELECT 1 FROM projects p WHERE p.id = s.project_id AND p.deleted_at IS NULL)
      ORDER BY s.next_run_at LIMIT $2
      FOR UPDATE OF s SKIP LOCKED`,
    [now, limit],
  );
  return rows;
}

/** Claims one occurrence; false when it was already claimed (by another replica). */
export async function claimFiring(
  tx: Queryable,
  f: { scheduleId: string; orgId: string; dueAt: Date; outcome: 'claimed' | 'skipped'; missed: number },
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `INSERT INTO schedule_firings (schedule_id, due_at, org_id, outcome, missed) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT DO NOTHING`,
    [f.scheduleId, f.dueAt, f.orgId, f.outcome, f.missed],
  );
  return rowCount > 0;
}

export async function advanceSchedule(
  tx: Queryable,
  id: string,
  s: { nextRunAt: Date | null; skipped: number; firedAt: Date; outcome: string | null },
): Promise<void> {
  await tx.query(
    `UPDATE schedules SET next_run_at = $2, skipped_count = skipped_count + $3,
            last_fired_at = CASE WHEN $5::text IS NULL THEN last_fired_at ELSE $4 END,
            last_outcome = coalesce($5, last_outcome), updated_at = now()
      WHERE id = $1`,
    [id, s.nextRunAt, s.skipped, s.firedAt, s.outcome],
  );
}

/** A schedule whose stored expression no longer parses: stopped, with the reason shown. */
export async function stopSchedule(tx: Queryable, id: string, error: string): Promise<void> {
  await tx.query(
    `UPDATE schedules SET next_run_at = NULL, last_outcome = 'failed', last_error = $2, updated_at = now() WHERE id = $1`,
    [id, error],
  );
}

/** What became of a claimed firing, on the firing and on its schedule. */
export async function settleFiring(
  db: Queryable,
  f: { scheduleId: string; dueAt: Date; outcome: 'started' | 'failed'; runId: string | null; error: string | null },
): Promise<void> {
  await db.query(
    `WITH f AS (
       UPDATE schedule_firings SET outcome = $3, run_id = $4, error = $5
        WHERE schedule_id = $1 AND due_at = $2 AND outcome = 'claimed' RETURNING schedule_id)
     UPDATE schedules s SET last_outcome = $3, last_run_id = coalesce($4, s.last_run_id), last_error = $5, updated_at = now()
       FROM f WHERE s.id = f.schedule_id`,
    [f.scheduleId, f.dueAt, f.outcome, f.runId, f.error],
  );
}

/**
 * Firings left `claimed` by a scheduler that stopped before creating their run: linked to
 * the run if that schedule did start one meanwhile (within a minute of the claim), failed
 * otherwise. Never re-run: the occurrence may already have had its run.
 */
export async function settleInterruptedFirings(db: Queryable, staleSeconds: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `WITH stale AS (
       SELECT f.schedule_id, f.due_at, f.fired_at, s.project_id FROM schedule_firings f JOIN schedules s ON s.id = f.schedule_id
        WHERE f.outcome = 'claimed' AND f.fired_at < now() - make_interval(secs => $1) LIMIT 100),
     candidates AS (
       SELECT st.*, (SELECT r.id FROM runs r
                      WHERE r.project_id = st.project_id AND r.created_by = 'system:schedule:' || st.schedule_id
                        AND r.created_at BETWEEN st.fired_at AND st.fired_at + interval '1 minute'
                        AND NOT EXISTS (SELECT 1 FROM schedule_firings o WHERE o.run_id = r.id)
                      ORDER BY r.created_at LIMIT 1) AS run_id
         FROM stale st),
     -- One run settles one claim (the latest occurrence), however many claims could name it.
     matched AS (
       SELECT schedule_id, due_at,
              CASE WHEN row_number() OVER (PARTITION BY run_id ORDER BY due_at DESC) = 1 THEN run_id END AS run_id
         FROM candidates),
     settled AS (
       UPDATE schedule_firings f
          SET outcome = CASE WHEN m.run_id IS NULL THEN 'failed' ELSE 'started' END, run_id = m.run_id,
              error = CASE WHEN m.run_id IS NULL THEN 'the server stopped before the run was created' END
         FROM matched m WHERE f.schedule_id = m.schedule_id AND f.due_at = m.due_at
       RETURNING f.schedule_id, f.due_at, f.outcome, f.run_id, f.error),
     -- The schedule shows what its latest firing came to, if that was one of these.
     shown AS (
       UPDATE schedules s SET last_outcome = l.outcome, last_run_id = coalesce(l.run_id, s.last_run_id), last_error = l.error
         FROM (SELECT DISTINCT ON (schedule_id) * FROM settled ORDER BY schedule_id, due_at DESC) l
        WHERE s.id = l.schedule_id AND s.last_outcome = 'claimed'
       RETURNING 1)
     SELECT count(*)::int AS n FROM settled`,
    [staleSeconds],
  );
  return rows[0]?.n ?? 0;
}

export async function pruneFirings(db: Queryable, days: number, limit: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM schedule_firings WHERE ctid IN (
       SELECT ctid FROM schedule_firings WHERE fired_at < now() - make_interval(days => $1) AND outcome <> 'claimed' LIMIT $2)`,
    [days, limit],
  );
  return rowCount;
}
