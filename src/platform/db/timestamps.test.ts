import fc from 'fast-check';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { parseTimestamptz } from './timestamps.js';

const postgresDate = pg.types.getTypeParser(1184, 'text') as (text: string) => Date | number | null;

/** The text PostgreSQL prints for a timestamptz in a UTC session (fraction without trailing zeros). */
function printed(ms: number, micros: number): string {
  const date = new Date(ms);
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  const fraction = `${String(date.getUTCMilliseconds()).padStart(3, '0')}${String(micros).padStart(3, '0')}`.replace(/0+$/, '');
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction ? `.${fraction}` : ''}+00`;
}

const same = (text: string) => {
  const fast = parseTimestamptz(text);
  const reference = postgresDate(text);
  expect(fast instanceof Date ? fast.getTime() : fast).toEqual(reference instanceof Date ? reference.getTime() : reference);
};

describe('parseTimestamptz', () => {
  it('reads what PostgreSQL prints in a UTC session as node-postgres does', () => {
    const years1000To9999 = fc.integer({ min: Date.UTC(1000, 0, 1), max: Date.UTC(9999, 11, 31, 23, 59, 59, 999) });
    fc.assert(
      fc.property(years1000To9999, fc.integer({ min: 0, max: 999 }), (ms, micros) => same(printed(ms, micros))),
      { numRuns: 5_000 },
    );
    expect((parseTimestamptz('2026-11-25 03:04:05.123456+00') as Date).toISOString()).toBe('2026-11-25T03:04:05.123Z');
    expect((parseTimestamptz('2026-11-25 03:04:05.5+00') as Date).toISOString()).toBe('2026-11-25T03:04:05.500Z');
    expect((parseTimestamptz('2026-11-25 03:04:05+00') as Date).toISOString()).toBe('2026-11-25T03:04:05.000Z');
  });

  it('leaves every other form to node-postgres', () => {
    for (const text of [
      '2026-11-25 03:04:05.123+01',
      '2026-11-25 03:04:05-07:30',
      '0099-01-01 00:00:00+00',
      '0500-06-01 12:00:00+00',
      '2000-01-01 00:00:00+00 BC',
      '12345-01-01 00:00:00+00',
      'infinity',
      '-infinity',
      '2026-1x-25 03:04:05+00',
      '2026-11-25 03:04:05.1234567+00',
    ]) {
      same(text);
    }
  });
});
