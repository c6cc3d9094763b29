// Schedules: a project's cron expression (in a time zone) that starts runs. CRUD, reads with
// the next occurrences, and the firing history. The scheduler itself is schedules.scheduler.ts.
import type { AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { AppDeps } from '../../platform/deps.js';
import { ConflictError, NotFoundError, isUniqueViolation } from '../../platform/errors.js';
import { decodeCursor, encodeCursor, iso } from '../../platform/http/schemas.js';
import { recordAudit } from '../audit/audit.record.js';
import { findProject } from '../projects/projects.queries.js';
import { nextOccurrence, nextOccurrences, parseCron, type MissedPolicy } from './schedules.cron.js';
import {
  deleteSchedule as deleteScheduleRow,
  findSchedule,
  insertSchedule,
  listFirings,
  listSchedules,
  updateSchedule,
  type FiringRow,
  type ScheduleFields,
  type ScheduleSortKey,
  type ScheduleView,
} from './schedules.queries.js';

type Deps = Pick<AppDeps, 'db' | 'bus'>;

export interface ScheduleInput {
  name: string;
  cron: string;
  timezone?: string;
  enabled?: boolean;
  branch?: string | null;
  commit?: string | null;
  message?: string | null;
  env?: Record<string, string>;
  missed?: MissedPolicy;
}

export function presentSchedule(s: ScheduleView, preview?: Date[]) {
  return {
    id: s.id,
    project_id: s.project_id,
    name: s.name,
    cron: s.cron,
    timezone: s.timezone,
    enabled: s.enabled,
    branch: s.branch,
    commit: s.commit,
    message: s.message,
    env: s.env,
    missed: s.missed,
    next_run_at: iso(s.next_run_at),
    last_run: s.last_run_id ? { id: s.last_run_id, number: s.last_run_number, state: s.last_run_state } : null,
    last_fired_at: iso(s.last_fired_at),
    last_outcome: s.last_outcome,
    last_error: s.last_error,
    skipped_count: s.skipped_count,
    created_by: s.created_by,
    created_at: iso(s.created_at),
    updated_at: iso(s.updated_at),
    ...(preview ? { next_runs: preview.map((d) => d.toISOString()) } : {}),
  };
}
export type Schedule = ReturnType<typeof presentSchedule>;

/** Checked fields, with `next_run_at` counted from now (null while disabled). */
function fieldsOf(input: Required<Omit<ScheduleInput, 'branch' | 'commit' | 'message'>> & ScheduleInput): ScheduleFields {
  const cron = parseCron(input.cron, input.timezone);
  return {
    name: input.name,
    cron: input.cron.trim(),
    timezone: input.timezone,
    enabled: input.enabled,
    branch: input.branch ?? null,
    commit: input.commit ?? null,
    message: input.message ?? null,
    env: input.env,
    missed: input.missed,
    next_run_at: input.enabled ? nextOccurrence(cron, new Date()) : null,
  };
}

function nameConflict(error: unknown, name: string): never {
  if (isUniqueViolation(error, 'schedules_project_id_name_key')) {
    throw new ConflictError(`This project already has a schedule named "${name}".`, 'schedule_name_taken', { name });
  }
  throw error;
}

const auditView = (s: ScheduleFields & { project_id?: string }) => ({ ...s, next_run_at: iso(s.next_run_at) });

export async function createSchedule(deps: Deps, auth: AuthContext, projectId: string, input: ScheduleInput): Promise<Schedule> {
  const fields = fieldsOf({ timezone: 'UTC', enabled: true, env: {}, missed: 'skip', ...input });
  let id: string;
  try {
    id = await deps.db.transaction(async (tx) => {
      if (!(await findProject(tx, auth.orgId, projectId))) throw new NotFoundError('Project');
      const row = await insertSchedule(tx, {
        ...fields,
        org_id: auth.orgId,
        project_id: projectId,
        created_by: `${auth.actor.type}:${auth.actor.id}`,
      });
      await recordAudit(tx, auth, {
        action: 'schedule.created',
        resource: ['schedule', row.id],
        projectId,
        after: auditView(fields),
      });
      return row.id;
    });
  } catch (error) {
    nameConflict(error, fields.name);
  }
  const schedule = await getSchedule(deps, auth, id);
  publishOrgEvent(deps.bus, auth.orgId, 'schedule.created', { schedule_id: id, project_id: projectId, schedule });
  return schedule;
}

export async function getSchedule(deps: Pick<AppDeps, 'db'>, auth: AuthContext, id: string, preview = 0): Promise<Schedule> {
  const row = await findSchedule(deps.db, auth.orgId, id);
  if (!row) throw new NotFoundError('Schedule');
  if (preview === 0) return presentSchedule(row);
  // The coming occurrences, whether or not the schedule is enabled (what it would do).
  return presentSchedule(row, nextOccurrences(parseCron(row.cron, row.timezone), new Date(), preview));
}

export async function patchSchedule(deps: Deps, auth: AuthContext, id: string, patch: Partial<ScheduleInput>): Promise<Schedule> {
  let projectId = '';
  try {
    await deps.db.transaction(async (tx) => {
      const before = await findSchedule(tx, auth.orgId, id, { forUpdate: true });
      if (!before) throw new NotFoundError('Schedule');
      projectId = before.project_id;
      const merged = {
        name: patch.name ?? before.name,
        cron: patch.cron ?? before.cron,
        timezone: patch.timezone ?? before.timezone,
        enabled: patch.enabled ?? before.enabled,
        branch: patch.branch !== undefined ? patch.branch : before.branch,
        commit: patch.commit !== undefined ? patch.commit : before.commit,
        message: patch.message !== undefined ? patch.message : before.message,
        env: patch.env ?? before.env,
        missed: patch.missed ?? before.missed,
      };
      const fields = fieldsOf(merged);
      // Only a change of timing moves next_run_at; renaming must not skip or repeat an occurrence.
      const timingSame = merged.cron === before.cron && merged.timezone === before.timezone && merged.enabled === before.enabled;
      if (timingSame) fields.next_run_at = before.next_run_at;
      await updateSchedule(tx, id, fields);
      await recordAudit(tx, auth, {
        action: 'schedule.updated',
        resource: ['schedule', id],
        projectId,
        before: auditView({ ...before, next_run_at: before.next_run_at }),
        after: auditView(fields),
      });
    });
  } catch (error) {
    nameConflict(error, patch.name ?? '');
  }
  const schedule = await getSchedule(deps, auth, id);
  publishOrgEvent(deps.bus, auth.orgId, 'schedule.updated', { schedule_id: id, project_id: projectId, schedule });
  return schedule;
}

export async function deleteSchedule(deps: Deps, auth: AuthContext, id: string): Promise<void> {
  const projectId = await deps.db.transaction(async (tx) => {
    const before = await findSchedule(tx, auth.orgId, id, { forUpdate: true });
    if (!before) throw new NotFoundError('Schedule');
    await deleteScheduleRow(tx, id);
    await recordAudit(tx, auth, {
      action: 'schedule.deleted',
      resource: ['schedule', id],
      projectId: before.project_id,
      before: presentSchedule(before),
    });
    return before.project_id;
  });
  publishOrgEvent(deps.bus, auth.orgId, 'schedule.deleted', { schedule_id: id, project_id: projectId });
}

export interface ScheduleListQuery {
  limit?: number;
  cursor?: string;
  project_id?: string;
  enabled?: boolean;
  sort?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A cursor made by this sort: its values go into SQL casts, which must not fail. */
function cursorFits([value, id]: unknown[], sort: ScheduleSortKey): boolean {
  if (typeof value !== 'string' || typeof id !== 'string' || !UUID.test(id)) return false;
  return sort === 'name' || value === 'infinity' || !Number.isNaN(Date.parse(value));
}

export async function listSchedulesPage(deps: Pick<AppDeps, 'db'>, auth: AuthContext, q: ScheduleListQuery) {
  const limit = q.limit ?? 50;
  const sortParam = q.sort ?? 'next_run_at';
  const descending = sortParam.startsWith('-');
  const sort = sortParam.replace(/^-/, '') as ScheduleSortKey;
  const cursor = q.cursor ? decodeCursor(q.cursor, 2) : undefined;
  if (cursor && !cursorFits(cursor, sort)) decodeCursor('', 2); // the same 400 as any bad cursor
  const rows = await listSchedules(deps.db, {
    orgId: auth.orgId,
    projectId: q.project_id,
    enabled: q.enabled,
    sort,
    descending,
    after: cursor ? { value: cursor[0] as string, id: cursor[1] as string } : undefined,
    limit: limit + 1,
  });
  const page = rows.slice(0, limit).map((r) => presentSchedule(r));
  const last = page.at(-1);
  const keyOf = (s: Schedule) => (sort === 'next_run_at' ? (s.next_run_at ?? 'infinity') : s[sort]);
  return { items: page, next_cursor: rows.length > limit && last ? encodeCursor([keyOf(last), last.id]) : null };
}

const presentFiring = (f: FiringRow) => ({
  due_at: iso(f.due_at),
  fired_at: iso(f.fired_at),
  outcome: f.outcome,
  missed: f.missed,
  run_id: f.run_id,
  error: f.error,
});

/** What the scheduler did with each due occurrence, newest first. */
export async function listFiringsPage(
  deps: Pick<AppDeps, 'db'>,
  auth: AuthContext,
  id: string,
  q: { limit?: number; cursor?: string },
) {
  if (!(await findSchedule(deps.db, auth.orgId, id))) throw new NotFoundError('Schedule');
  const limit = q.limit ?? 50;
  const cursor = q.cursor ? decodeCursor(q.cursor, 1) : undefined;
  const before = cursor?.[0];
  if (cursor && (typeof before !== 'string' || Number.isNaN(Date.parse(before)))) decodeCursor('', 1);
  const rows = await listFirings(deps.db, { scheduleId: id, before: before as string | undefined, limit: limit + 1 });
  const page = rows.slice(0, limit).map(presentFiring);
  const last = page.at(-1);
  return { items: page, next_cursor: rows.length > limit && last ? encodeCursor([last.due_at]) : null };
}
