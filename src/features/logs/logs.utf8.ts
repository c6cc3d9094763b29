// Byte ranges of a log that never split a character. Offsets count UTF-8 bytes (that is
// what an agent can count while streaming), but a range handed back as JSON text must
// start and end on character boundaries. The stored log is valid UTF-8 (every chunk
// arrives as a JSON string), so a boundary is any byte that is not a continuation byte.

const isContinuation = (byte: number | undefined) => byte !== undefined && (byte & 0xc0) === 0x80;

/** How many bytes to skip at the start of `bytes` to begin on a character (0 to 3). */
export function partialCharAtStart(bytes: Uint8Array): number {
  let skip = 0;
  while (skip < 3 && isContinuation(bytes[skip])) skip++;
  return skip;
}

/** The longest prefix of `bytes` no longer than `max` that ends on a character boundary. */
export function fitWholeChars(bytes: Uint8Array, max: number): number {
  if (max >= bytes.length) return bytes.length;
  let end = Math.max(0, max);
  while (end > 0 && isContinuation(bytes[end])) end--;
  return end;
}

/** Length of the character that starts at `bytes[0]`, from its lead byte. */
function charLength(lead: number): number {
  if (lead >= 0xf0) return 4;
  if (lead >= 0xe0) return 3;
  if (lead >= 0xc0) return 2;
  return 1;
}

/**
 * Like fitWholeChars, but never empty when `bytes` is not: a limit smaller than the first
 * character still returns that character, so a reader paging with a tiny limit progresses.
 */
export function wholeCharsAtLeastOne(bytes: Uint8Array, max: number): number {
  const fit = fitWholeChars(bytes, max);
  if (fit > 0 || bytes.length === 0) return fit;
  return Math.min(bytes.length, charLength(bytes[0]!));
}
