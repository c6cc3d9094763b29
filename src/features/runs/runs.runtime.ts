// The run engine's per-process side: advance requests, coalesced and run a few at a time
// (a burst of finished jobs of one run is one advance, and the database pool is never
// flooded), the jobs-ended listener that asks for them, and the sweeper leader loop that
// advances runs nobody asked about for a while (a notice lost to a crash, an approval that
// expired, a slot that freed elsewhere).
import type { FastifyBaseLogger } from 'fastify';
import { LOCK_KEYS, tryInSavepoint, type Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import type { AfterCommit } from '../../platform/effects.js';
import { startLeaderLoop, type LeaderLoop } from '../../platform/leader.js';
import type { JobRow } from '../queue/queue.model.js';
import type { StepDrivers } from './runs.drivers.js';
import { advanceLockedRuns, advanceRun, type AdvanceResult } from './runs.engine.js';
import { idleActiveRuns, lockFreeRuns, runsWaitingForGroup } from './runs.advance.queries.js';

export const SWEEP_INTERVAL_MS = 5_000;
const IDLE_SECONDS = 10;

type Log = Pick<FastifyBaseLogger, 'warn' | 'info'>;

export interface RunsRuntime {
  readonly drivers: StepDrivers;
  /** Call once the dependencies exist: listens for ended jobs. */
  start(deps: AppDeps): void;
  /** Advance this run soon (coalesced; safe to call often). */
  requestAdvance(runId: string): void;
  /**
   * Advances these runs inside the caller's transaction, so what follows a step (its
   * dependents' jobs) commits with what ended it. A run another transaction holds, or
   * whose advance fails (rolled back to a savepoint, never failing the caller), is
   * advanced after the commit instead. The caller must not be midway through changing
   * one of these runs itself.
   */
  advanceInTransaction(tx: Queryable, after: AfterCommit, runIds: Iterable<string>): Promise<void>;
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
  let waking = 0;
  let idleWaiters: (() => void)[] = [];

  const settleIfIdle = () => {
    if (pending.size === 0 && inFlight.size === 0 && waking === 0) {
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

  // A step that let go of a concurrency slot may let another run's step start.
  const wakeGroupWaiters = async (d: AppDeps, result: AdvanceResult) => {
    for (const group of result.freedGroups) {
      for (const waiting of await runsWaitingForGroup(d.db, result.run!.org_id, group, 8)) runtime.requestAdvance(waiting);
    }
  };

  // After a commit that advanced runs in a caller's transaction: counted as work in
  // progress, so `idle()` waits until the waiting runs it finds are asked for.
  const wakeAfterCommit = (d: AppDeps, result: AdvanceResult) => {
    waking++;
    wakeGroupWaiters(d, result)
      .catch((error: unknown) =>
        log?.warn({ err: error, run_id: result.run?.id }, 'waking runs waiting for a freed slot failed; the sweeper will'),
      )
      .finally(() => {
        waking--;
        settleIfIdle();
      });
  };

  const advanceOnce = async (d: AppDeps, runId: string) => {
    try {
      await wakeGroupWaiters(d, await advanceRun(d, runId));
    } catch (error) {
      // The sweeper will come back to it; a failed advance changes nothing.
      log?.warn({ err: error, run_id: runId }, 'advancing a run failed; the sweeper will retry');
    }
  };

  const runtime: RunsRuntime = {
    drivers,
    start(d) {
      deps = d;
      const runIdsOf = (jobs: readonly JobRow[]) => jobs.flatMap((job) => (job.run_id ? [job.run_id] : []));
      const stopEnding = d.queue.onJobsEnding((tx, after, jobs) => runtime.advanceInTransaction(tx, after, runIdsOf(jobs)));
      const stopEnded = d.queue.onJobsEnded((jobs, { advancedInTransaction }) => {
        if (!advancedInTransaction) for (const runId of runIdsOf(jobs)) runtime.requestAdvance(runId);
      });
      stopListening = () => {
        stopEnding();
        stopEnded();
      };
    },
    requestAdvance(runId) {
      pending.add(runId);
      setImmediate(pump);
    },
    async advanceInTransaction(tx, after, runIds) {
      const wanted = new Set(runIds);
      if (!deps || wanted.size === 0) return;
      const d = deps;
      const locked = await lockFreeRuns(tx, [...wanted]);
      // Every run together; should that fail, each on its own, so one bad run holds up no other.
      const batches = locked.length > 0 ? [locked] : [];
      while (batches.length > 0) {
        const batch = batches.shift()!;
        const mark = after.mark();
        const outcome = await tryInSavepoint(tx, () => advanceLockedRuns(d, tx, after, batch));
        if (outcome.ok) {
          for (const result of outcome.value) {
            wanted.delete(result.run!.id);
            if (result.freedGroups.length > 0) after.add(() => wakeAfterCommit(d, result));
          }
          continue;
        }
        after.discardSince(mark);
        if (batch.length > 1) batches.push(...batch.map((run) => [run]));
        else
          log?.warn(
            { err: outcome.error, run_id: batch[0]!.id },
            'advancing a run with its step failed; advancing it on its own',
          );
      }
      // Held by another transaction, or failed here: the runtime advances them after the commit.
      for (const runId of wanted) after.add(() => runtime.requestAdvance(runId));
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
