// A streaming redactor: replaces every occurrence of a secret in a job's output with
// [REDACTED], even when a secret arrives split across two chunks of output. It holds back
// the shortest tail that could still become a secret (a proper prefix of one) until more
// output arrives or the process ends, so nothing is delayed that cannot be a secret.
//
// Overlapping secrets ("abcd" and "cdef" in "abcdef") are redacted as the union of their
// spans, so no part of either leaks; a longer secret wins over a shorter one it starts
// with ("abcd" and "abcdefgh"): the redactor waits to see which it is.

export const REDACTED = '[REDACTED]';
/** Shorter values are not redacted: "1" or "yes" would shred every log. */
export const MIN_SECRET_LENGTH = 4;
/**
 * A pathological stream (a secret that overlaps itself, repeated forever) could keep a
 * run of redaction open indefinitely; past this many held characters it is flushed.
 */
const MAX_HOLD_CHARS = 64 * 1024;

export interface Redactor {
  /** Feeds output; answers what can be shown now. */
  push(text: string): string;
  /** Answers everything held back (the process ended, or a marker line must go out). */
  flush(): string;
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

export function createRedactor(secrets: Iterable<string>): Redactor {
  const list = [...new Set(secrets)].filter((s) => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
  const firstChars = new Set(list.map((s) => s[0]!));
  const maxLength = list[0]?.length ?? 0;
  let pending = '';

  /** Spans [start, end) covered by some secret, merged when they overlap or touch. */
  function coveredRuns(buffer: string): Array<[number, number]> {
    const runs: Array<[number, number]> = [];
    for (let i = 0; i < buffer.length; i++) {
      if (!firstChars.has(buffer[i]!)) continue;
      for (const secret of list) {
        if (!buffer.startsWith(secret, i)) continue;
        const last = runs.at(-1);
        if (last && i <= last[1]) last[1] = Math.max(last[1], i + secret.length);
        else runs.push([i, i + secret.length]);
        break; // the longest match at i covers the shorter ones
      }
    }
    return runs;
  }

  /** First position whose remaining text could still grow into a secret. */
  function holdPoint(buffer: string): number {
    for (let i = Math.max(0, buffer.length - maxLength + 1); i < buffer.length; i++) {
      if (!firstChars.has(buffer[i]!)) continue;
      const rest = buffer.length - i;
      if (list.some((s) => s.length > rest && s.startsWith(buffer.slice(i)))) return i;
    }
    return buffer.length;
  }

  function emit(final: boolean): string {
    const buffer = pending;
    const runs = coveredRuns(buffer);
    let hold = final ? buffer.length : holdPoint(buffer);
    // Never split a surrogate pair: half a character would reach the log as garbage.
    if (hold > 0 && hold < buffer.length && isHighSurrogate(buffer.charCodeAt(hold - 1))) hold--;
    // Never cut a redaction in two: the held half alone would no longer match.
    const straddling = runs.find(([start, end]) => start < hold && end > hold);
    if (straddling) hold = straddling[0];
    if (!final && buffer.length - hold > MAX_HOLD_CHARS) return emit(true);
    let out = '';
    let at = 0;
    for (const [start, end] of runs) {
      if (end > hold) break;
      out += buffer.slice(at, start) + REDACTED;
      at = end;
    }
    out += buffer.slice(at, hold);
    pending = buffer.slice(hold);
    return out;
  }

  return {
    push(text) {
      if (list.length === 0) return text;
      pending += text;
      return emit(false);
    },
    flush() {
      return list.length === 0 ? '' : emit(true);
    },
  };
}
