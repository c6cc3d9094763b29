import { createHash } from 'node:crypto';
import { describe, it, expect } from 'vitest';
import { EMPTY_ROOT, canonicalLeafBytes, hashEquals, leafHash, nodeHash } from './hash.js';

const sha = (...parts: Uint8Array[]): Buffer => createHash('sha256').update(Buffer.concat(parts)).digest();

describe('RFC 6962 hashing', () => {
  it('domain-separates leaves and nodes', () => {
    const a = Buffer.from('a');
    expect(leafHash(a)).toEqual(sha(Buffer.from([0]), a));
    const l = leafHash(a);
    const r = leafHash(Buffer.from('b'));
    expect(nodeHash(l, r)).toEqual(sha(Buffer.from([1]), l, r));
    expect(nodeHash(l, r)).not.toEqual(nodeHash(r, l));
    expect(EMPTY_ROOT).toEqual(sha());
    expect(leafHash(new Uint8Array(0))).toEqual(sha(Buffer.from([0])));
  });

  it('does not let the scratch buffer leak between calls', () => {
    const l = leafHash(Buffer.from('x'));
    const first = nodeHash(l, l);
    nodeHash(EMPTY_ROOT, EMPTY_ROOT);
    expect(first).toEqual(sha(Buffer.from([1]), l, l));
  });

  it('hashes odd-length inputs faithfully', () => {
    expect(nodeHash(Buffer.from([1]), Buffer.from([2, 3]))).toEqual(sha(Buffer.from([1, 1, 2, 3])));
  });

  it('compares hashes without throwing on length mismatch', () => {
    expect(hashEquals(EMPTY_ROOT, Buffer.from(EMPTY_ROOT))).toBe(true);
    expect(hashEquals(EMPTY_ROOT, EMPTY_ROOT.subarray(1))).toBe(false);
  });
});

describe('canonicalLeafBytes (RFC 8785)', () => {
  it('is independent of key order and whitespace', () => {
    expect(canonicalLeafBytes({ b: 1, a: [true, null, 'x'] }).toString()).toBe('{"a":[true,null,"x"],"b":1}');
    expect(canonicalLeafBytes({ a: [true, null, 'x'], b: 1 })).toEqual(canonicalLeafBytes({ b: 1, a: [true, null, 'x'] }));
  });

  it('uses JCS number and string forms', () => {
    expect(canonicalLeafBytes({ n: 1e21, m: 0.1, z: -0 }).toString()).toBe('{"m":0.1,"n":1e+21,"z":0}');
    expect(canonicalLeafBytes('\u00e9\u2028').toString('hex')).toBe(Buffer.from('"\u00e9\u2028"', 'utf8').toString('hex'));
  });

  it('refuses values without a JSON form', () => {
    expect(() => canonicalLeafBytes(undefined)).toThrow(TypeError);
    expect(() => canonicalLeafBytes(Number.NaN)).toThrow();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalLeafBytes(cyclic)).toThrow();
  });
});
