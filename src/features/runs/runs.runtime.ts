// The run engine's per-process side: advance requests, coalesced and run a few at a time
// (a burst of finished jobs of one run is one advance, and the database pool is never
// flooded), the jobs-ended listener that asks for them, and the sweeper leader loop that
// advances runs nobody asked about for a while (a notice lost to a crash, an approval that
// expired, a slot that freed elsewhere).
import type { FastifyBaseLogger } from 'fastify';
import { LOCK_KEYS } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { startLeaderLoop, type LeaderLoop } from '../../platform/leader.js';
import type { StepDrivers } from './runs.drivers.js';
import { advanceRun } from './runs.engine.js';
import { idleActiveRuns, runsWaitingForGroup } from './runs.queries.js';

export const SWEEP_INTERVAL_MS = 5_000;
const IDLE_SECONDS = 10;

type Log = Pick<FastifyBaseLogger, 'warn' | 'info'>;

export interface RunsRuntime {
  readonly drivers: StepDrivers;
  /** Call once the dependencies exist: listens for ended jobs. */
  start(deps: AppDeps): void;
  /** Advance this run soon (coalesced; safe to call often). */
  requestAdvance(runId: string): void;
  /** Resolves once no advance is pending or running (tests, shutdown). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/**
 * `concurrency`: advances in flight at once (CAIRN_RUN_ADVANCE_CONCURRENCY); beyond the
 * database pool they wait for a connection. An advance is a few short statements and a
 * commit, so it mostly waits, and too few in flight turn a burst of finished jobs (an agent
 * reports 50 at once) into seconds of queueing: in bench/pipelines.ts (1,000 runs, pool of
 * 20) 6 gave p50 2.1 s from a step's end to its dependent's job, 16 gave 0.75 s, 32 gave 64 ms.
 */
export function createRunsRuntime(drivers: StepDrivers, log?: Log, concurrency = 32): RunsRuntime {
  let deps: AppDeps | undefined;
  let stopListening: (() => void) | undefined;
  const pending = new Set<string>();
  const inFlight = new Set<string>();
  let idleWaiters: (() => void)[] = [];

  const settleIfIdle = () => {
    if (pending.size === 0 && inFlight.size === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      waiters.forEach((w) => w());
    }
  };

  const pump = () => {
    if (!deps) return;
    for (const runId of pending) {
      if (inFlight.size >= concurrency) return;
      if (inFlight.has(runId)) continue; // advanced again once the running one is done
      pending.delete(runId);
      inFlight.add(runId);
      void advanceOnce(deps, runId).finally(() => {
        inFlight.delete(runId);
        pump();
        settleIfIdle();
      });
    }
  };

  const advanceOnce = async (d: AppDeps, runId: string) => {
    try {
      const result = await advanceRun(d, runId);
      // A step that let go of a concurrency slot may let another run's step start.
      for (const group of result.freedGroups) {
        for (const waiting of await runsWaitingForGroup(d.db, result.run!.org_id, group, 8)) runtime.requestAdvance(waiting);
      }
    } catch (error) {
      // The sweeper will come back to it; a failed advance changes nothing.
      log?.warn({ err: error, run_id: runId }, 'advancing a run failed; the sweeper will retry');
    }
  };

  const runtime: RunsRuntime = {
    drivers,
    start(d) {
      deps = d;
      stopListening = d.queue.onJobsEnded((jobs) => {
        for (const job of jobs) if (job.run_id) runtime.requestAdvance(job.run_id);
      });
    },
    requestAdvance(runId) {
      pending.add(runId);
      setImmediate(pump);
    },
    idle() {
      return new Promise((resolve) => {
        idleWaiters.push(resolve);
        settleIfIdle();
      });
    },
    async close() {
      stopListening?.();
      await runtime.idle();
    },
  };
  return runtime;
}

export function startRunSweeper(deps: AppDeps, log: FastifyBaseLogger): LeaderLoop {
  return startLeaderLoop(deps.db, {
    name: 'run-sweeper',
    lockKey: LOCK_KEYS.runSweeper,
    intervalMs: SWEEP_INTERVAL_MS,
    log,
    async tick() {
      for (const runId of await idleActiveRuns(deps.db, IDLE_SECONDS, 500)) deps.runs.requestAdvance(runId);
    },
  });
}
