// Queue statistics without counting the history. Each replica counts what it did (claims
// with their wait, finished attempts with their run time) in memory, per organization,
// pool, priority and minute, and adds its counts to `queue_stats` every few seconds with
// one upsert per key. Wait and run times go into fixed histogram buckets, so averages and
// percentiles come from summed counters whatever the volume. A replica that crashes loses
// at most its last few seconds of counts — statistics, never jobs.
import type { Db } from '../../platform/db/index.js';
import type { QueueMetrics } from './queue.metrics.js';
import { addQueueStats, type QueueStatsDelta } from './stats.queries.js';

/** Upper bounds (ms) of the histogram buckets; the last bucket is everything above. */
export const BUCKET_BOUNDS_MS = [
  5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000,
] as const;
export const BUCKETS = BUCKET_BOUNDS_MS.length + 1;

export function bucketOf(ms: number): number {
  const i = BUCKET_BOUNDS_MS.findIndex((bound) => ms <= bound);
  return i < 0 ? BUCKET_BOUNDS_MS.length : i;
}

/** The q-quantile (0..1) of a bucketed distribution, interpolated within its bucket. */
export function quantileMs(buckets: readonly number[], q: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i] ?? 0;
    if (n > 0 && seen + n >= rank) {
      const low = i === 0 ? 0 : BUCKET_BOUNDS_MS[i - 1]!;
      const high = BUCKET_BOUNDS_MS[i] ?? low * 2;
      return low + ((rank - seen) / n) * (high - low);
    }
    seen += n;
  }
  return BUCKET_BOUNDS_MS.at(-1)!;
}

export type FinishOutcome = 'completed' | 'failed' | 'dead_lettered' | 'canceled' | 'timed_out' | 'retried';

interface Key {
  org_id: string;
  pool_id: string;
  priority: number;
}

export interface StatsRecorder {
  claimed(job: Key & { waitMs: number }): void;
  finished(job: Key & { outcome: FinishOutcome; execMs: number | null }): void;
  /** Adds what was counted so far to the database; safe to call any time. */
  flush(db: Db): Promise<void>;
}

/** `metrics` (optional) also receives every count, for Prometheus. */
export function createStatsRecorder(metrics?: QueueMetrics): StatsRecorder {
  let counts = new Map<string, QueueStatsDelta>();

  const entry = (k: Key, minute = new Date(Math.floor(Date.now() / 60_000) * 60_000)): QueueStatsDelta => {
    const id = `${k.org_id}|${k.pool_id}|${k.priority}|${minute.getTime()}`;
    let delta = counts.get(id);
    if (!delta) {
      delta = {
        org_id: k.org_id,
        pool_id: k.pool_id,
        priority: k.priority,
        minute,
        completed: 0,
        failed: 0,
        dead_lettered: 0,
        canceled: 0,
        timed_out: 0,
        retried: 0,
        wait_count: 0,
        wait_sum_ms: 0,
        wait_buckets: new Array<number>(BUCKETS).fill(0),
        exec_count: 0,
        exec_sum_ms: 0,
        exec_buckets: new Array<number>(BUCKETS).fill(0),
      };
      counts.set(id, delta);
    }
    return delta;
  };

  return {
    claimed(job) {
      const d = entry(job);
      const ms = Math.max(0, job.waitMs);
      metrics?.waited(ms / 1000);
      d.wait_count++;
      d.wait_sum_ms += ms;
      d.wait_buckets[bucketOf(ms)]!++;
    },
    finished(job) {
      const d = entry(job);
      d[job.outcome]++;
      metrics?.finished(job.outcome);
      if (job.execMs !== null && job.outcome !== 'retried') {
        const ms = Math.max(0, job.execMs);
        d.exec_count++;
        d.exec_sum_ms += ms;
        d.exec_buckets[bucketOf(ms)]!++;
      }
    },
    async flush(db) {
      if (counts.size === 0) return;
      const batch = [...counts.values()];
      counts = new Map();
      try {
        await addQueueStats(db, batch);
      } catch (error) {
        // Keep the counts for the next flush rather than lose them to a passing failure.
        for (const d of batch) {
          const into = entry(d, d.minute);
          for (const k of ['completed', 'failed', 'dead_lettered', 'canceled', 'timed_out', 'retried'] as const) into[k] += d[k];
          into.wait_count += d.wait_count;
          into.wait_sum_ms += d.wait_sum_ms;
          into.exec_count += d.exec_count;
          into.exec_sum_ms += d.exec_sum_ms;
          d.wait_buckets.forEach((n, i) => (into.wait_buckets[i]! += n));
          d.exec_buckets.forEach((n, i) => (into.exec_buckets[i]! += n));
        }
        throw error;
      }
    },
  };
}
