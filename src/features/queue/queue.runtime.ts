// What the queue keeps per process: the long-poll waiters and the statistics counts not
// yet written. One per server (created with the other dependencies, closed with them).
import type { Registry } from 'prom-client';
import type { Bus } from '../../platform/bus.js';
import type { Db } from '../../platform/db/index.js';
import { registerQueueMetrics } from './queue.metrics.js';
import type { JobRow } from './queue.model.js';
import { createStatsRecorder, type StatsRecorder } from './queue.stats.js';
import { createWakeups, type Wakeups } from './queue.wakeups.js';

export const STATS_FLUSH_MS = 2_000;
/** While Redis (cross-replica wake-ups) is away, parked claims re-check this often. */
const DEGRADED_POLL_MS = 2_000;

export type JobsEndedListener = (jobs: readonly JobRow[]) => void;

export interface QueueRuntime {
  wakeups: Wakeups;
  stats: StatsRecorder;
  /**
   * In-process notice, after the commit, of jobs that reached a final state on this
   * replica (pipelines advance their runs on it). Not a delivery guarantee: a replica may
   * die between the commit and the notice, so listeners also sweep for what they missed.
   */
  onJobsEnded(listener: JobsEndedListener): () => void;
  jobsEnded(jobs: readonly JobRow[]): void;
  close(): Promise<void>;
}

export function createQueueRuntime(deps: {
  db: Db;
  bus: Bus;
  metrics: Registry;
  log?: { warn(obj: object, msg: string): void };
}): QueueRuntime {
  const wakeups = createWakeups(deps.bus, { degradedPollMs: DEGRADED_POLL_MS });
  const stats = createStatsRecorder(registerQueueMetrics(deps.metrics, deps.db));
  const flush = () =>
    stats.flush(deps.db).catch((error: unknown) => deps.log?.warn({ err: error }, 'queue statistics flush failed; will retry'));
  const timer = setInterval(() => void flush(), STATS_FLUSH_MS);
  timer.unref();
  const listeners = new Set<JobsEndedListener>();
  return {
    wakeups,
    stats,
    onJobsEnded(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    jobsEnded(jobs) {
      if (jobs.length === 0) return;
      for (const listener of listeners) {
        try {
          listener(jobs);
        } catch (error) {
          deps.log?.warn({ err: error }, 'a jobs-ended listener failed');
        }
      }
    },
    async close() {
      clearInterval(timer);
      wakeups.close();
      await flush();
    },
  };
}
