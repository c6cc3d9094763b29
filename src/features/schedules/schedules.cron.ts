// Cron expressions and time zones (croner): validation whose message names what is wrong,
// the next occurrences, and what a scheduler that woke up late owes (the missed policy).
import { Cron } from 'croner';
import { ValidationError } from '../../platform/errors.js';

/** An occurrence fired at most this late still counts as on time; older ones are "missed". */
export const ON_TIME_GRACE_MS = 60_000;
/**
 * Missed occurrences counted one by one at most; past it the count stops there (a
 * minutely schedule down for a day shows 1,000 skipped). Each step costs croner ~0.1 ms,
 * inside the transaction that holds the schedule's row.
 */
export const MAX_COUNTED_MISSES = 1_000;

export function checkTimezone(timezone: string): string {
  try {
    // Throws RangeError for a name the runtime's IANA database does not know.
    return new Intl.DateTimeFormat('en-US', { timeZone: timezone }).resolvedOptions().timeZone;
  } catch {
    throw new ValidationError(
      [{ field: 'timezone', message: `unknown time zone "${timezone}"; use an IANA name such as "Europe/Berlin" or "UTC"` }],
      `Unknown time zone "${timezone}".`,
    );
  }
}

/**
 * A parsed schedule expression. Five fields (minute hour day-of-month month day-of-week)
 * or a nickname (@hourly, @daily, @weekly, @monthly, @yearly); no seconds field, because a
 * schedule starts whole pipeline runs. Day-of-month and day-of-week combine with OR, as in
 * Vixie cron.
 */
export function parseCron(cron: string, timezone: string): Cron {
  const zone = checkTimezone(timezone);
  const parts = cron.trim().split(/\s+/);
  if (!cron.trim().startsWith('@') && parts.length !== 5) {
    const reason = `expected 5 fields (minute hour day-of-month month day-of-week) or a nickname such as @daily, got ${parts.length}`;
    throw new ValidationError([{ field: 'cron', message: reason }], `The cron expression "${cron}" is not valid: ${reason}`);
  }
  let parsed: Cron;
  try {
    parsed = new Cron(cron.trim(), { timezone: zone, paused: true, mode: '5-part' });
  } catch (error) {
    const reason = (error as Error).message.replace(/^CronPattern:\s*/, '');
    throw new ValidationError([{ field: 'cron', message: reason }], `The cron expression "${cron}" is not valid: ${reason}`);
  }
  if (!parsed.nextRun()) {
    throw new ValidationError(
      [{ field: 'cron', message: 'never fires: no occurrence in the future' }],
      `The cron expression "${cron}" never fires.`,
    );
  }
  return parsed;
}

/** The first occurrence strictly after `after`, or null when there is none. */
export function nextOccurrence(cron: Cron, after: Date): Date | null {
  return cron.nextRun(after);
}

export function nextOccurrences(cron: Cron, after: Date, count: number): Date[] {
  return cron.nextRuns(count, after);
}

export type MissedPolicy = 'skip' | 'run_once';

export interface DuePlan {
  /** The occurrence a run is started for (its firing's `due_at`), or null when none is. */
  fire: Date | null;
  /** Occurrences that passed unfired (counted up to MAX_COUNTED_MISSES). */
  missed: number;
  /** The latest missed occurrence (where a skip is recorded), or null. */
  lastMissed: Date | null;
  /** What `next_run_at` becomes: the first occurrence after `now`. */
  next: Date | null;
}

/**
 * What to do with a schedule whose `next_run_at` (`dueAt`) has come at `now`. The latest
 * occurrence at or before `now` fires if it is at most ON_TIME_GRACE_MS old; every earlier
 * one, and that one too when it is older, was missed (the scheduler was down or far
 * behind). Policy `skip` starts nothing for missed occurrences; `run_once` starts one run
 * for the latest of them, whether or not it was on time.
 */
export function planDue(cron: Cron, dueAt: Date, now: Date, policy: MissedPolicy): DuePlan {
  let latest = dueAt;
  let count = 1;
  for (let next = cron.nextRun(dueAt); next && next.getTime() <= now.getTime(); next = cron.nextRun(next)) {
    latest = next;
    if (++count >= MAX_COUNTED_MISSES) {
      // Jump ahead rather than walk every occurrence of a very long outage.
      latest = cron.previousRuns(1, new Date(now.getTime() + 1))[0] ?? latest;
      break;
    }
  }
  const onTime = now.getTime() - latest.getTime() <= ON_TIME_GRACE_MS;
  const missed = onTime ? count - 1 : count;
  const lastMissed = missed === 0 ? null : onTime ? (cron.previousRuns(1, latest)[0] ?? dueAt) : latest;
  const next = cron.nextRun(now);
  if (onTime || policy === 'run_once') return { fire: latest, missed, lastMissed, next };
  return { fire: null, missed, lastMissed, next };
}
