// Queue statistics (seed 001's /api/queue/stats) and the dashboard summary. Live figures
// come from the live table (small by design); finished-work figures from the per-minute
// roll-ups (never the history). An answer is shared for a second per organization, so a
// wall of dashboards polling every second costs one computation.
import type { AuthContext } from '../../platform/auth.js';
import type { AppDeps } from '../../platform/deps.js';
import { requirePool } from '../pools/pools.service.js';
import { PRIORITIES } from './queue.model.js';
import { BUCKETS, quantileMs } from './queue.stats.js';
import { liveCounts, sumQueueStats, type LiveCountRow, type StatsSumRow } from './stats.queries.js';

type Deps = Pick<AppDeps, 'db' | 'cache' | 'queue'>;

const SHARE_MS = 1_000;
const LIVE = ['scheduled', 'queued', 'claimed', 'running', 'blocked'] as const;
const FINISHED = ['completed', 'failed', 'dead_lettered', 'canceled', 'timed_out', 'retried'] as const;

function emptySum(): StatsSumRow {
  return {
    pool_id: '',
    priority: 0,
    ...Object.fromEntries(FINISHED.map((k) => [k, 0])),
    wait_count: 0,
    wait_sum_ms: 0,
    wait_buckets: new Array<number>(BUCKETS).fill(0),
    exec_count: 0,
    exec_sum_ms: 0,
    exec_buckets: new Array<number>(BUCKETS).fill(0),
  } as StatsSumRow;
}

function addInto(into: StatsSumRow, row: StatsSumRow): void {
  for (const k of FINISHED) into[k] += row[k];
  into.wait_count += row.wait_count;
  into.wait_sum_ms += row.wait_sum_ms;
  into.exec_count += row.exec_count;
  into.exec_sum_ms += row.exec_sum_ms;
  row.wait_buckets.forEach((n, i) => (into.wait_buckets[i] = (into.wait_buckets[i] ?? 0) + n));
  row.exec_buckets.forEach((n, i) => (into.exec_buckets[i] = (into.exec_buckets[i] ?? 0) + n));
}

function figures(live: readonly LiveCountRow[], sum: StatsSumRow) {
  const state = (s: string) => live.filter((r) => r.state === s).reduce((n, r) => n + r.jobs, 0);
  const failures = sum.failed + sum.dead_lettered + sum.timed_out;
  const ended = sum.completed + failures;
  const seconds = (ms: number | null) => (ms === null ? null : Math.round(ms) / 1000);
  return {
    ...Object.fromEntries(LIVE.map((s) => [s, state(s)])),
    ...Object.fromEntries(FINISHED.map((k) => [k, sum[k]])),
    avg_wait_seconds: sum.wait_count ? seconds(sum.wait_sum_ms / sum.wait_count) : null,
    p95_wait_seconds: seconds(quantileMs(sum.wait_buckets, 0.95)),
    avg_execution_seconds: sum.exec_count ? seconds(sum.exec_sum_ms / sum.exec_count) : null,
    p95_execution_seconds: seconds(quantileMs(sum.exec_buckets, 0.95)),
    failure_rate: ended ? failures / ended : 0,
  } as Record<(typeof LIVE)[number] | (typeof FINISHED)[number], number> & {
    avg_wait_seconds: number | null;
    p95_wait_seconds: number | null;
    avg_execution_seconds: number | null;
    p95_execution_seconds: number | null;
    failure_rate: number;
  };
}

async function computeStats(deps: Deps, auth: AuthContext, poolId: string | undefined, windowMinutes: number) {
  // This replica's own unwritten counts first, so a caller reads its own writes.
  await deps.queue.stats.flush(deps.db);
  const since = new Date(Date.now() - windowMinutes * 60_000);
  const [live, sums] = await Promise.all([
    liveCounts(deps.db, auth.orgId, poolId),
    sumQueueStats(deps.db, auth.orgId, since, poolId),
  ]);
  const total = emptySum();
  sums.forEach((row) => addInto(total, row));
  const poolIds = [...new Set([...live.map((r) => r.pool_id), ...sums.map((r) => r.pool_id)])];
  const sumWhere = (match: (r: StatsSumRow) => boolean) => {
    const s = emptySum();
    sums.filter(match).forEach((row) => addInto(s, row));
    return s;
  };
  return {
    window_minutes: windowMinutes,
    ...figures(live, total),
    by_pool: poolIds.map((id) => ({
      pool_id: id,
      ...figures(
        live.filter((r) => r.pool_id === id),
        sumWhere((r) => r.pool_id === id),
      ),
    })),
    by_priority: PRIORITIES.map((name, rank) => ({
      priority: name,
      ...figures(
        live.filter((r) => r.priority === rank),
        sumWhere((r) => r.priority === rank),
      ),
    })),
  };
}

export type QueueStats = Awaited<ReturnType<typeof computeStats>>;

export async function queueStats(
  deps: Deps,
  auth: AuthContext,
  q: { pool?: string; window_minutes?: number },
): Promise<QueueStats> {
  const windowMinutes = q.window_minutes ?? 60;
  const pool = q.pool ? await requirePool(deps, auth, q.pool) : undefined;
  const key = `queue-stats:${auth.orgId}:${pool?.id ?? '*'}:${windowMinutes}`;
  const shared = await deps.cache.get(key);
  if (shared) return JSON.parse(shared) as QueueStats;
  const stats = await computeStats(deps, auth, pool?.id, windowMinutes);
  await deps.cache.set(key, JSON.stringify(stats), SHARE_MS);
  return stats;
}

/** Seed 001's dashboard summary: totals over the retained history, plus what runs now. */
export async function dashboardSummary(deps: Deps, auth: AuthContext) {
  await deps.queue.stats.flush(deps.db);
  const [live, sums] = await Promise.all([liveCounts(deps.db, auth.orgId), sumQueueStats(deps.db, auth.orgId, null)]);
  const total = emptySum();
  sums.forEach((row) => addInto(total, row));
  const f = figures(live, total);
  const inFlight = LIVE.reduce((n, s) => n + f[s], 0);
  const finished = f.completed + f.failed + f.dead_lettered + f.canceled + f.timed_out;
  return {
    total_jobs: inFlight + finished,
    jobs_queued: f.queued + f.scheduled + f.blocked,
    jobs_running: f.claimed + f.running,
    jobs_completed: f.completed,
    jobs_failed: f.failed + f.dead_lettered + f.timed_out,
    jobs_canceled: f.canceled,
    jobs_by_state: Object.fromEntries([...LIVE, ...FINISHED.filter((k) => k !== 'retried')].map((s) => [s, f[s]])),
  };
}
