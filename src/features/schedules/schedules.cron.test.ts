import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../platform/errors.js';
import { MAX_COUNTED_MISSES, nextOccurrences, parseCron, planDue } from './schedules.cron.js';

const at = (s: string) => new Date(s);
const iso = (d: Date | null) => d?.toISOString() ?? null;

function fieldErrorOf(fn: () => unknown): { field: string; message: string } {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).errors[0]!;
  }
  throw new Error('expected a validation error');
}

describe('cron expressions and time zones', () => {
  it.each([
    ['61 * * * *', /minute: 61/],
    ['0 25 * * *', /hour: 25/],
    ['* * * *', /expected 5 fields/],
    ['* * * * * *', /expected 5 fields .* got 6/],
    ['0 0 * * funday', /illegal|invalid/i],
    ['*/0 * * * *', /stepping/],
  ])('refuses %s naming the cron field', (cron, message) => {
    const error = fieldErrorOf(() => parseCron(cron, 'UTC'));
    expect(error.field).toBe('cron');
    expect(error.message).toMatch(message);
  });

  it('refuses an expression that never fires', () => {
    expect(fieldErrorOf(() => parseCron('0 0 31 2 *', 'UTC'))).toMatchObject({ field: 'cron', message: /never fires/ });
  });

  it('refuses an unknown time zone, naming it', () => {
    expect(fieldErrorOf(() => parseCron('0 * * * *', 'Mars/Olympus_Mons'))).toMatchObject({
      field: 'timezone',
      message: /unknown time zone "Mars\/Olympus_Mons"/,
    });
  });

  it('reads the expression in its time zone, across a daylight-saving change', () => {
    // 09:00 in Berlin: 08:00 UTC in winter, 07:00 UTC once summer time starts (2025-03-30).
    const cron = parseCron('0 9 * * *', 'Europe/Berlin');
    expect(nextOccurrences(cron, at('2025-03-28T12:00:00Z'), 3).map(iso)).toEqual([
      '2025-03-29T08:00:00.000Z',
      '2025-03-30T07:00:00.000Z',
      '2025-03-31T07:00:00.000Z',
    ]);
    expect(iso(nextOccurrences(parseCron('@daily', 'America/New_York'), at('2025-01-01T00:00:00Z'), 1)[0]!)).toBe(
      '2025-01-01T05:00:00.000Z',
    );
  });
});

describe('what a late scheduler owes (missed policy)', () => {
  const every5 = parseCron('*/5 * * * *', 'UTC');
  const due = at('2025-01-01T10:00:00Z');

  it('fires an occurrence that is due now, once, and moves on', () => {
    const plan = planDue(every5, due, at('2025-01-01T10:00:00.400Z'), 'skip');
    expect(plan).toEqual({ fire: due, missed: 0, lastMissed: null, next: at('2025-01-01T10:05:00Z') });
  });

  it('still fires an occurrence up to a minute late', () => {
    expect(planDue(every5, due, at('2025-01-01T10:00:59Z'), 'skip').fire).toEqual(due);
    expect(planDue(every5, due, at('2025-01-01T10:01:01Z'), 'skip').fire).toBeNull();
  });

  it('skip: after downtime, fires the on-time occurrence and counts the ones that passed', () => {
    const plan = planDue(every5, due, at('2025-01-01T11:00:30Z'), 'skip');
    expect(plan).toEqual({
      fire: at('2025-01-01T11:00:00Z'),
      missed: 12,
      lastMissed: at('2025-01-01T10:55:00Z'),
      next: at('2025-01-01T11:05:00Z'),
    });
  });

  it('skip: when even the latest occurrence is late, nothing runs', () => {
    const plan = planDue(every5, due, at('2025-01-01T11:02:00Z'), 'skip');
    expect(plan).toEqual({ fire: null, missed: 13, lastMissed: at('2025-01-01T11:00:00Z'), next: at('2025-01-01T11:05:00Z') });
  });

  it('run_once: one run for all missed occurrences, on time or not', () => {
    expect(planDue(every5, due, at('2025-01-01T11:02:00Z'), 'run_once')).toMatchObject({
      fire: at('2025-01-01T11:00:00Z'),
      missed: 13,
    });
    expect(planDue(every5, due, at('2025-01-01T11:00:30Z'), 'run_once')).toMatchObject({
      fire: at('2025-01-01T11:00:00Z'),
      missed: 12,
    });
  });

  it('counts a very long outage without walking every occurrence', () => {
    const minutely = parseCron('* * * * *', 'UTC');
    const started = performance.now();
    const plan = planDue(minutely, due, at('2026-01-01T10:00:30Z'), 'skip');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(plan.fire).toEqual(at('2026-01-01T10:00:00Z'));
    expect(plan.missed).toBe(MAX_COUNTED_MISSES - 1);
    expect(plan.next).toEqual(at('2026-01-01T10:01:00Z'));
  });
});
