import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRedactor, REDACTED } from './redactor.js';

/** Feeds `chunks` one by one and answers everything the redactor let out. */
function run(secrets: string[], chunks: string[]): string {
  const redactor = createRedactor(secrets);
  return chunks.map((c) => redactor.push(c)).join('') + redactor.flush();
}

describe('streaming redactor', () => {
  it('redacts a secret inside one chunk, every time it appears', () => {
    expect(run(['hunter22'], ['pass=hunter22 and again hunter22.'])).toBe(`pass=${REDACTED} and again ${REDACTED}.`);
  });

  it('redacts a secret split across chunks, at every split point', () => {
    const secret = 's3cr3t-value';
    const text = `before ${secret} after`;
    for (let cut = 0; cut <= text.length; cut++) {
      expect(run([secret], [text.slice(0, cut), text.slice(cut)])).toBe(`before ${REDACTED} after`);
    }
  });

  it('redacts a secret arriving one character at a time', () => {
    expect(run(['abcdefgh'], [...'xxabcdefghyy'])).toBe(`xx${REDACTED}yy`);
  });

  it('holds back only what could still become a secret', () => {
    const redactor = createRedactor(['password123']);
    expect(redactor.push('hello pass')).toBe('hello ');
    expect(redactor.push('port ok')).toBe('passport ok');
    expect(redactor.push('x passw')).toBe('x ');
    expect(redactor.push('ord123!')).toBe(`${REDACTED}!`);
    expect(redactor.flush()).toBe('');
  });

  it('lets a held prefix out when the process ends', () => {
    const redactor = createRedactor(['password123']);
    expect(redactor.push('the end: passw')).toBe('the end: ');
    expect(redactor.flush()).toBe('passw');
  });

  it('redacts the union of overlapping secrets, leaking no part of either', () => {
    expect(run(['abcd', 'cdef'], ['xx abcdef yy'])).toBe(`xx ${REDACTED} yy`);
    expect(run(['abcd', 'cdef'], ['xx ab', 'cde', 'f yy'])).toBe(`xx ${REDACTED} yy`);
  });

  it('prefers the longer of two secrets that start alike, even when split', () => {
    expect(run(['abcd', 'abcdefgh'], ['1 abcd', 'efgh 2'])).toBe(`1 ${REDACTED} 2`);
    expect(run(['abcd', 'abcdefgh'], ['1 abcd', 'x 2'])).toBe(`1 ${REDACTED}x 2`);
  });

  it('handles multibyte text and secrets without splitting characters', () => {
    expect(run(['pässwörd'], ['ü pä', 'sswö', 'rd ü'])).toBe(`ü ${REDACTED} ü`);
    // An emoji is two UTF-16 units: a hold point must never fall between them.
    const redactor = createRedactor(['😀😀😀x']);
    const first = redactor.push('ok 😀😀');
    expect(first).toBe('ok ');
    expect(redactor.push('😀y')).toBe('😀😀😀y');
  });

  it('ignores values shorter than four characters and passes text through without secrets', () => {
    expect(run(['abc', ''], ['abc abc'])).toBe('abc abc');
    expect(run([], ['plain ', 'text'])).toBe('plain text');
  });

  it('never lets a secret through, however the output is cut (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ minLength: 4, maxLength: 10, unit: fc.constantFrom('a', 'b', 'c', 'é') }), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.array(fc.string({ maxLength: 12, unit: fc.constantFrom('a', 'b', 'c', 'é', ' ') }), { maxLength: 6 }),
        fc.array(fc.nat(40), { maxLength: 5 }),
        (secrets, fillers, cuts) => {
          const text = fillers.map((f, i) => f + secrets[i % secrets.length]!).join('') + secrets[0]!;
          const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          const chunks = [0, ...points, text.length].slice(1).map((end, i, ends) => text.slice(i === 0 ? 0 : ends[i - 1], end));
          const out = run(secrets, chunks);
          // Whatever was cut, the result is the same as redacting the whole text at once
          // (up to adjacent redactions, which a cut may leave as two markers) …
          const merged = (s: string) => s.replace(/(\[REDACTED\])+/g, REDACTED);
          expect(merged(out)).toBe(merged(run(secrets, [text])));
          // … and no secret survives in it.
          for (const secret of secrets) expect(out.replaceAll(REDACTED, '\u0000')).not.toContain(secret);
        },
      ),
    );
  });
});
