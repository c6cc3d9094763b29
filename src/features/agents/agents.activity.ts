// What an agent did: its status history, the attempts it ran, and figures drawn from them.
import type { AuthContext } from '../../platform/auth.js';
import type { AppDeps } from '../../platform/deps.js';
import { NotFoundError } from '../../platform/errors.js';
import { decodeCursor, encodeCursor, iso } from '../../platform/http/schemas.js';
import { agentMetrics, findAgent, listActivity, listStatusEvents } from './agents.queries.js';

type Deps = Pick<AppDeps, 'db'>;

async function requireAgentId(deps: Deps, auth: AuthContext, id: string): Promise<void> {
  if (!(await findAgent(deps.db, auth.orgId, id))) throw new NotFoundError('Agent');
}

export async function statusHistory(deps: Deps, auth: AuthContext, id: string, q: { limit?: number; cursor?: string }) {
  await requireAgentId(deps, auth, id);
  const limit = q.limit ?? 50;
  const before = q.cursor ? Number(decodeCursor(q.cursor, 1)[0]) : undefined;
  const rows = await listStatusEvents(deps.db, auth.orgId, id, Number.isSafeInteger(before) ? before : undefined, limit + 1);
  const page = rows.slice(0, limit);
  return {
    items: page.map((r) => ({ from: r.from_status, to: r.to_status, reason: r.reason, at: iso(r.at) })),
    next_cursor: rows.length > limit ? encodeCursor([page.at(-1)!.id]) : null,
  };
}

export async function activityLog(deps: Deps, auth: AuthContext, id: string, q: { limit?: number; cursor?: string }) {
  await requireAgentId(deps, auth, id);
  const limit = q.limit ?? 50;
  const cursor = q.cursor ? decodeCursor(q.cursor, 2) : undefined;
  const rows = await listActivity(
    deps.db,
    auth.orgId,
    id,
    cursor ? { finishedAt: String(cursor[0]), jobId: String(cursor[1]) } : undefined,
    limit + 1,
  );
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map((r) => ({
      job_id: r.job_id,
      job_name: r.job_name,
      attempt: r.attempt,
      outcome: r.outcome,
      exit_status: r.exit_status,
      reason: r.reason,
      claimed_at: iso(r.claimed_at),
      started_at: iso(r.started_at),
      finished_at: iso(r.finished_at),
      duration_seconds: (r.finished_at.getTime() - (r.started_at ?? r.claimed_at ?? r.finished_at).getTime()) / 1000,
    })),
    next_cursor: rows.length > limit && last ? encodeCursor([iso(last.finished_at), last.job_id]) : null,
  };
}

/** Jobs done, failure rate and busy time over a window (attempts that ended in it). */
export async function metrics(deps: Deps, auth: AuthContext, id: string, windowHours: number) {
  await requireAgentId(deps, auth, id);
  const since = new Date(Date.now() - windowHours * 3_600_000);
  const m = await agentMetrics(deps.db, auth.orgId, id, since);
  const windowSeconds = windowHours * 3600;
  return {
    window_hours: windowHours,
    attempts: m.attempts,
    completed: m.completed,
    failed: m.failed,
    failure_rate: m.attempts > 0 ? m.failed / m.attempts : 0,
    busy_seconds: m.busy_ms / 1000,
    utilization: Math.min(1, m.busy_ms / 1000 / windowSeconds),
    first_finished_at: iso(m.first_at),
    last_finished_at: iso(m.last_at),
  };
}
