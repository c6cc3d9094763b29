import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from './jcs.js';

/** Same text, or the same kind of failure, as the reference package. */
function expectSameAsPackage(value: unknown): void {
  let expected: string | undefined;
  let expectedError: unknown;
  try {
    expected = canonicalize(value);
  } catch (error) {
    expectedError = error;
  }
  if (expectedError) expect(() => canonicalJson(value)).toThrow();
  else expect(canonicalJson(value)).toBe(expected);
}

// Strings over all UTF-16 code units, so lone surrogates and escapes are exercised.
const anyString = fc.string({ unit: 'binary' });
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.double(),
    fc.integer(),
    anyString,
    fc.string({ unit: fc.constantFrom('a', 'é', '\u2028', '"', '\\', '\n', '😀', '\uD800', '\uDC00') }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(anyString, tie('value'), { maxKeys: 5 }),
  ),
})).value;

describe('canonicalJson (fast RFC 8785)', () => {
  it('matches the canonicalize package on arbitrary JSON-like values', () => {
    fc.assert(
      fc.property(json, (v) => expectSameAsPackage(v)),
      { numRuns: 2_000 },
    );
  });

  it('sorts records of many keys as the package does (small ones take an insertion sort)', () => {
    fc.assert(
      fc.property(fc.dictionary(anyString, fc.integer(), { minKeys: 2, maxKeys: 40 }), (v) => expectSameAsPackage(v)),
      { numRuns: 500 },
    );
  });

  it('matches it on values outside plain JSON too', () => {
    fc.assert(
      fc.property(fc.anything({ withDate: true, withNullPrototype: true, withSparseArray: true }), (v) => expectSameAsPackage(v)),
      {
        numRuns: 1_000,
      },
    );
    for (const v of [
      undefined,
      Number.NaN,
      Infinity,
      -0,
      1e21,
      5e-324,
      new Date(0),
      { d: new Date(0) },
      [undefined, () => 1],
      { f: () => 1 },
      { u: undefined, a: 1 },
      '\uD800',
      { '\uDFFF': 1 },
      JSON.parse('{"__proto__":{"x":1},"a":2}'),
      { 10: 'a', 9: 'b', x: 1 },
    ]) {
      expectSameAsPackage(v);
    }
    expect(() => canonicalJson(10n)).toThrow();
  });

  it('sorts keys by UTF-16 code units and keeps deep or cyclic inputs on the safe path', () => {
    expect(canonicalJson({ '\u20ac': 1, '\r': 2, '\ud83d\ude00': 3, '1': 4, a: 5 })).toBe('{"\\r":2,"1":4,"a":5,"€":1,"😀":3}');
    let deep: unknown = 1;
    for (let i = 0; i < 500; i++) deep = [deep];
    expectSameAsPackage(deep);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow();
  });
});
