// Reading timestamptz values. node-postgres parses them with postgres-date, a regular
// expression per value; a job row has nine of them and the queue reads thousands of rows
// a second. In a session whose TimeZone is UTC, PostgreSQL prints every timestamptz of
// years 1000-9999 as `YYYY-MM-DD HH:MM:SS[.ffffff]+00`: that shape is read digit by digit
// here, without a regular expression or substrings; anything else (other offsets, BC,
// infinity) goes to postgres-date, node-postgres's own parser for the type.
import pg from 'pg';

export const TIMESTAMPTZ_OID = 1184;
const parseDate = pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (text: string) => Date | number | null;

const DASH = 45;
const SPACE = 32;
const COLON = 58;
const DOT = 46;

/** The decimal number in `text[from, from + count)`, or -1 if a character is not a digit. */
function digits(text: string, from: number, count: number): number {
  let value = 0;
  for (let i = from; i < from + count; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

/** Milliseconds of a fraction of 1 to 6 digits after the dot (truncated, as postgres-date does), or -1. */
function fractionMs(text: string, from: number, count: number): number {
  if (count < 1 || count > 6) return -1;
  const value = digits(text, from, count);
  if (value < 0) return -1;
  return count >= 3 ? Math.floor(value / 10 ** (count - 3)) : value * 10 ** (3 - count);
}

/** A timestamptz as PostgreSQL prints it, as node-postgres would parse it (a Date, or ±Infinity). */
export function parseTimestamptz(text: string): Date | number | null {
  const n = text.length;
  const shaped =
    n >= 22 &&
    text.charCodeAt(4) === DASH &&
    text.charCodeAt(7) === DASH &&
    text.charCodeAt(10) === SPACE &&
    text.charCodeAt(13) === COLON &&
    text.charCodeAt(16) === COLON &&
    text.endsWith('+00');
  if (!shaped) return parseDate(text);
  const ms = n === 22 ? 0 : text.charCodeAt(19) === DOT ? fractionMs(text, 20, n - 23) : -1;
  const year = digits(text, 0, 4);
  const month = digits(text, 5, 2);
  const day = digits(text, 8, 2);
  const hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2);
  const second = digits(text, 17, 2);
  // Years before 1000 would need care (Date.UTC maps 0-99 to 1900-1999): postgres-date has it.
  if (ms < 0 || year < 1000 || month < 1 || day < 1 || hour < 0 || minute < 0 || second < 0) return parseDate(text);
  return new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms));
}
