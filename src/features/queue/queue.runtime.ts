// What the queue keeps per process: the long-poll waiters, the statistics counts not yet
// written, and the lanes that gather agents' hand-ins. One per server (created with the other dependencies, closed with them).
import type { Registry } from 'prom-client';
import type { Bus } from '../../platform/bus.js';
import type { Db, Queryable } from '../../platform/db/index.js';
import type { AfterCommit } from '../../platform/effects.js';
import { createHandIns, type HandIns } from './queue.handins.js';
import { registerQueueMetrics } from './queue.metrics.js';
import type { JobRow } from './queue.model.js';
import { createStatsRecorder, type StatsRecorder } from './queue.stats.js';
import { createWakeups, type Wakeups } from './queue.wakeups.js';

export const STATS_FLUSH_MS = 2_000;
/** While Redis (cross-replica wake-ups) is away, parked claims re-check this often. */
const DEGRADED_POLL_MS = 2_000;

export type JobsEndedListener = (jobs: readonly JobRow[], how: { advancedInTransaction: boolean }) => void;
/** Work that commits with the jobs' end, in the ending transaction (`advancedInTransaction`). */
export type JobsEndingHook = (tx: Queryable, after: AfterCommit, jobs: readonly JobRow[]) => Promise<void>;

export interface QueueRuntime {
  wakeups: Wakeups;
  stats: StatsRecorder;
  /** Agents' hand-ins, gathered into shared statements (queue.handins.ts). */
  handIns: HandIns;
  /**
   * In-process notice, after the commit, of jobs that reached a final state on this
   * replica (pipelines advance their runs on it). Not a delivery guarantee: a replica may
   * die between the commit and the notice, so listeners also sweep for what they missed.
   */
  onJobsEnded(listener: JobsEndedListener): () => void;
  jobsEnded(jobs: readonly JobRow[], how?: { advancedInTransaction: boolean }): void;
  /**
   * In-transaction hooks, run where an agent reports jobs ended (the hot path): a run's
   * next steps are queued in the same commit as the step's end. Other paths (cancel, the
   * reaper, a lost agent) leave it to the after-commit notice, since they may hold locks
   * the hooks would need.
   */
  onJobsEnding(hook: JobsEndingHook): () => void;
  jobsEnding(tx: Queryable, after: AfterCommit, jobs: readonly JobRow[]): Promise<void>;
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
  const hooks = new Set<JobsEndingHook>();
  return {
    wakeups,
    stats,
    handIns: createHandIns(deps.db),
    onJobsEnded(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    jobsEnded(jobs, how = { advancedInTransaction: false }) {
      if (jobs.length === 0) return;
      for (const listener of listeners) {
        try {
          listener(jobs, how);
        } catch (error) {
          deps.log?.warn({ err: error }, 'a jobs-ended listener failed');
        }
      }
    },
    onJobsEnding(hook) {
      hooks.add(hook);
      return () => hooks.delete(hook);
    },
    async jobsEnding(tx, after, jobs) {
      if (jobs.length === 0) return;
      for (const hook of hooks) await hook(tx, after, jobs);
    },
    async close() {
      clearInterval(timer);
      wakeups.close();
      await flush();
    },
  };
}
