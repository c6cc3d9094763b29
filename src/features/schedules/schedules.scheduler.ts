// The scheduler: a leader loop that fires due schedules. Exactly once per due occurrence,
// however many replicas tick at the same moment: one transaction locks the due schedules
// (FOR UPDATE SKIP LOCKED), claims each occurrence by inserting its `schedule_firings` row
// (primary key (schedule_id, due_at), ON CONFLICT DO NOTHING) and moves `next_run_at` on;
// only the claimer then creates the run (which takes its own transaction) and settles the
// firing as `started` with the run, or `failed` with the error. A claim whose scheduler
// died before settling is settled by the next sweep (linked to its run if one was made,
// failed otherwise) and never re-run. The clock is injected, so tests drive it.
import type { FastifyBaseLogger } from 'fastify';
import { systemContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import { LOCK_KEYS } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { AppError } from '../../platform/errors.js';
import { startLeaderLoop, type LeaderLoop } from '../../platform/leader.js';
import { recordAudit } from '../audit/audit.record.js';
import { triggerRun } from '../runs/runs.service.js';
import { pruneDeliveries } from '../webhooks/webhooks.queries.js';
import { parseCron, planDue } from './schedules.cron.js';
import {
  advanceSchedule,
  claimFiring,
  lockDueSchedules,
  pruneFirings,
  settleFiring,
  settleInterruptedFirings,
  stopSchedule,
  type ScheduleRow,
} from './schedules.queries.js';

export const SCHEDULER_INTERVAL_MS = 1_000;
const BATCH = 50;
/** A claim older than this whose run was never recorded: its scheduler stopped. */
const CLAIM_STALE_SECONDS = 300;
const HOUSEKEEPING_EVERY_MS = 60_000;

export interface Claim {
  schedule: ScheduleRow;
  dueAt: Date;
  missed: number;
}

export interface TickReport {
  started: number;
  failed: number;
  /** Missed occurrences skipped (policy skip). */
  skipped: number;
}

const actorOf = (s: Pick<ScheduleRow, 'org_id' | 'id'>) => systemContext(s.org_id, `schedule:${s.id}`);

/** One transaction: lock a batch of due schedules, claim their occurrences, move them on. */
async function claimDue(deps: Pick<AppDeps, 'db'>, now: Date, report: TickReport): Promise<{ claims: Claim[]; seen: number }> {
  return deps.db.transaction(async (tx) => {
    const due = await lockDueSchedules(tx, now, BATCH);
    const claims: Claim[] = [];
    for (const s of due) {
      let cron;
      try {
        cron = parseCron(s.cron, s.timezone);
      } catch (error) {
        // Stored valid, invalid now (a time zone dropped from the runtime's database): stop
        // it visibly rather than fail every tick.
        await stopSchedule(tx, s.id, `stopped: ${(error as Error).message}`);
        continue;
      }
      const plan = planDue(cron, s.next_run_at!, now, s.missed);
      let skipped = 0;
      if (s.missed === 'skip' && plan.lastMissed) {
        const fresh = await claimFiring(tx, {
          scheduleId: s.id,
          orgId: s.org_id,
          dueAt: plan.lastMissed,
          outcome: 'skipped',
          missed: plan.missed,
        });
        if (fresh) skipped = plan.missed;
      }
      const missed = s.missed === 'run_once' ? plan.missed : 0;
      const claimed =
        plan.fire !== null &&
        (await claimFiring(tx, { scheduleId: s.id, orgId: s.org_id, dueAt: plan.fire, outcome: 'claimed', missed }));
      await advanceSchedule(tx, s.id, {
        nextRunAt: plan.next,
        skipped,
        firedAt: now,
        outcome: claimed ? 'claimed' : skipped ? 'skipped' : null,
      });
      if (skipped) {
        report.skipped += skipped;
        await recordAudit(tx, actorOf(s), {
          action: 'schedule.skipped',
          resource: ['schedule', s.id],
          projectId: s.project_id,
          details: { missed: skipped, last_missed: plan.lastMissed, policy: s.missed },
        });
      }
      if (claimed) {
        await recordAudit(tx, actorOf(s), {
          action: 'schedule.fired',
          resource: ['schedule', s.id],
          projectId: s.project_id,
          details: { due_at: plan.fire, missed, policy: s.missed },
        });
        claims.push({ schedule: s, dueAt: plan.fire!, missed });
      }
    }
    return { claims, seen: due.length };
  });
}

/** Creates the claimed occurrence's run and settles the firing either way. */
async function startClaimedRun(deps: AppDeps, claim: Claim, log?: FastifyBaseLogger): Promise<boolean> {
  const s = claim.schedule;
  try {
    const run = await triggerRun(deps, actorOf(s), s.project_id, {
      branch: s.branch,
      commit: s.commit,
      message: s.message ?? `Scheduled: ${s.name}`,
      env: s.env,
      trigger: 'schedule',
    });
    await settleFiring(deps.db, { scheduleId: s.id, dueAt: claim.dueAt, outcome: 'started', runId: run.id, error: null });
    publishOrgEvent(deps.bus, s.org_id, 'schedule.fired', {
      schedule_id: s.id,
      project_id: s.project_id,
      run_id: run.id,
      due_at: claim.dueAt.toISOString(),
    });
    return true;
  } catch (error) {
    // Kept on the firing and the schedule (last_error) where people look, not only in a log.
    const reason = error instanceof AppError ? (error.detail ?? error.title) : 'internal error while creating the run';
    if (!(error instanceof AppError)) log?.error({ err: error, schedule_id: s.id }, 'scheduled run failed to start');
    await settleFiring(deps.db, { scheduleId: s.id, dueAt: claim.dueAt, outcome: 'failed', runId: null, error: reason });
    publishOrgEvent(deps.bus, s.org_id, 'schedule.failed', {
      schedule_id: s.id,
      project_id: s.project_id,
      due_at: claim.dueAt.toISOString(),
      error: reason,
    });
    return false;
  }
}

/** One pass at `now`: every due schedule fired (or skipped) once. */
export async function fireDueSchedules(deps: AppDeps, now: Date, log?: FastifyBaseLogger): Promise<TickReport> {
  const report: TickReport = { started: 0, failed: 0, skipped: 0 };
  for (;;) {
    const { claims, seen } = await claimDue(deps, now, report);
    for (const claim of claims) {
      if (await startClaimedRun(deps, claim, log)) report.started++;
      else report.failed++;
    }
    if (seen < BATCH) return report;
  }
}

/**
 * Claims left by a scheduler that stopped; firings, and the webhook deliveries of the
 * other trigger, past the job-history retention. Ages are measured by the database's
 * clock, which stamped them.
 */
export async function schedulerHousekeeping(deps: Pick<AppDeps, 'db' | 'config'>): Promise<void> {
  await settleInterruptedFirings(deps.db, CLAIM_STALE_SECONDS);
  while ((await pruneFirings(deps.db, deps.config.jobHistoryDays, 5_000)) > 0) {
    // bounded statements until nothing is older than the cutoff
  }
  while ((await pruneDeliveries(deps.db, deps.config.jobHistoryDays, 5_000)) > 0) {
    // the same
  }
}

export function startScheduler(deps: AppDeps, log: FastifyBaseLogger, opts: { now?: () => Date } = {}): LeaderLoop {
  const now = opts.now ?? (() => new Date());
  let lastHousekeeping = 0;
  return startLeaderLoop(deps.db, {
    name: 'scheduler',
    lockKey: LOCK_KEYS.scheduler,
    intervalMs: SCHEDULER_INTERVAL_MS,
    log,
    async tick() {
      const at = now();
      const report = await fireDueSchedules(deps, at, log);
      if (report.started || report.failed || report.skipped) log.info({ ...report }, 'scheduler fired due schedules');
      if (Date.now() - lastHousekeeping > HOUSEKEEPING_EVERY_MS) {
        lastHousekeeping = Date.now();
        await schedulerHousekeeping(deps);
      }
    },
  });
}
