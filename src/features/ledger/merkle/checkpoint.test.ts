import { createHash } from 'node:crypto';
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { leafHash } from './hash.js';
import {
  CheckpointError,
  computeKeyId,
  formatCheckpointBody,
  formatVerifierKey,
  generateSigner,
  parseCheckpoint,
  parseNote,
  parseVerifierKey,
  signCheckpoint,
  signNote,
  signerFromSeed,
  verifyCheckpoint,
} from './checkpoint.js';

// Known-answer vectors from Go's golang.org/x/mod/sumdb/note (note.go docs and
// note_test.go): an independent implementation of the same format.
const GO_SIGNER_KEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const GO_VERIFIER_KEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_NOTE =
  GO_TEXT +
  '\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';
// Seed = key data after the third '+' minus the algorithm byte (the base64 itself contains a '+').
const GO_SEED = Buffer.from(GO_SIGNER_KEY.split('+').slice(4).join('+'), 'base64').subarray(1);

const ORIGIN = 'cairn.example/ledger';
const ROOT = leafHash(Buffer.from('root'));

describe('signed-note known answers (Go sumdb/note)', () => {
  it('derives the Go verifier key and key id from the seed', () => {
    const signer = signerFromSeed('PeterNeumann', GO_SEED);
    expect(signer.verifierKey).toBe(GO_VERIFIER_KEY);
    expect(signer.keyId.toString('hex')).toBe('c74f20a3');
    // Key id = SHA-256(name || 0x0A || 0x01 || pubkey)[0:4], computed independently.
    const manual = createHash('sha256')
      .update(Buffer.concat([Buffer.from('PeterNeumann'), Buffer.from([0x0a, 0x01]), signer.publicKey]))
      .digest()
      .subarray(0, 4);
    expect(computeKeyId('PeterNeumann', signer.publicKey)).toEqual(manual);
  });

  it('produces the Go signed note byte for byte', () => {
    expect(signNote(signerFromSeed('PeterNeumann', GO_SEED), GO_TEXT)).toBe(GO_NOTE);
  });

  it('parses the Go note', () => {
    const { body, signatures } = parseNote(GO_NOTE);
    expect(body).toBe(GO_TEXT);
    expect(signatures).toHaveLength(1);
    expect(signatures[0]!.keyName).toBe('PeterNeumann');
    expect(signatures[0]!.keyId.toString('hex')).toBe('c74f20a3');
    expect(signatures[0]!.signature).toHaveLength(64);
  });

  it('accepts third-party verifier keys, including base64 containing "+"', () => {
    for (const key of [
      GO_VERIFIER_KEY,
      'EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop',
      'TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6',
    ]) {
      const v = parseVerifierKey(key);
      expect(formatVerifierKey(v.keyName, v.publicKey)).toBe(key);
      expect(v.verifierKey).toBe(key);
    }
  });
});

describe('verifier keys', () => {
  it('round-trips generated keys', () => {
    const s = generateSigner(ORIGIN);
    const v = parseVerifierKey(s.verifierKey);
    expect(v.keyName).toBe(ORIGIN);
    expect(v.publicKey).toEqual(s.publicKey);
    expect(v.keyId).toEqual(s.keyId);
    expect(signerFromSeed(ORIGIN, s.seed).verifierKey).toBe(s.verifierKey);
  });

  it('rejects malformed keys', () => {
    const good = GO_VERIFIER_KEY;
    const bad = [
      '',
      'PeterNeumann',
      'PeterNeumann+c74f20a3',
      '+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW',
      good.replace('c74f20a3', 'c74f20a4'), // hash does not match key
      good.replace('c74f20a3', 'c74f20a'), // short hash
      good.replace('PeterNeumann', 'Peter Neumann'), // whitespace in name
      good.replace('+ARpc', '+AhpC'), // algorithm byte 0x02
      good.slice(0, -4), // truncated key
      good + '=', // non-canonical base64
      good.replace('PeterNeumann', 'PeterNeumann2'), // name not bound to hash
    ];
    for (const k of bad) expect(() => parseVerifierKey(k), k).toThrow(CheckpointError);
    // Every proper substring is also rejected, as in Go's TestNewVerifier.
    for (let i = 0; i < good.length; i++) {
      for (let j = i + 1; j <= good.length; j++) {
        if (i !== 0 || j !== good.length) expect(() => parseVerifierKey(good.slice(i, j))).toThrow(CheckpointError);
      }
    }
  });

  it('rejects invalid key names and seeds when building signers', () => {
    expect(() => generateSigner('has space')).toThrow(CheckpointError);
    expect(() => generateSigner('a+b')).toThrow(CheckpointError);
    expect(() => generateSigner('')).toThrow(CheckpointError);
    expect(() => signerFromSeed('x', Buffer.alloc(31))).toThrow(CheckpointError);
  });
});

describe('checkpoints', () => {
  const signer = generateSigner(ORIGIN);
  const cp = { origin: ORIGIN, size: 1234567, root: ROOT };
  const signed = signCheckpoint(signer, cp);

  it('has the C2SP tlog-checkpoint layout', () => {
    const lines = signed.split('\n');
    expect(lines.slice(0, 4)).toEqual([ORIGIN, '1234567', ROOT.toString('base64'), '']);
    expect(lines[4]).toMatch(new RegExp(`^\u2014 ${ORIGIN.replace(/\./g, '\\.')} [A-Za-z0-9+/]{91}=$`));
    expect(lines[5]).toBe('');
    expect(signCheckpoint(signer, cp)).toBe(signed); // Ed25519 is deterministic
  });

  it('verifies a round trip', () => {
    const r = verifyCheckpoint(signed, signer.verifierKey, { expectedOrigin: ORIGIN });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.checkpoint.origin).toBe(ORIGIN);
    expect(r.checkpoint.size).toBe(1234567);
    expect(r.checkpoint.root).toEqual(ROOT);
    expect(r.checkpoint.body).toBe(formatCheckpointBody(cp));
    expect(verifyCheckpoint(Buffer.from(signed, 'utf8'), parseVerifierKey(signer.verifierKey)).ok).toBe(true);
  });

  it('round-trips extension lines and huge sizes', () => {
    const ext = { origin: ORIGIN, size: Number.MAX_SAFE_INTEGER, root: ROOT, extensions: ['ext one', 'ext two'] };
    const r = verifyCheckpoint(signCheckpoint(signer, ext), signer.verifierKey);
    expect(r.ok && r.checkpoint.extensions).toEqual(['ext one', 'ext two']);
    expect(r.ok && r.checkpoint.size).toBe(Number.MAX_SAFE_INTEGER);
  });

  const expectCode = (text: string, code: string, key = signer.verifierKey): void => {
    const r = verifyCheckpoint(text, key, { expectedOrigin: ORIGIN });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.code).toBe(code);
  };

  it('rejects tampered size, root and origin', () => {
    expectCode(signed.replace('\n1234567\n', '\n1234568\n'), 'bad_signature');
    const otherRoot = Buffer.from(ROOT);
    otherRoot[0]! ^= 1;
    expectCode(signed.replace(ROOT.toString('base64'), otherRoot.toString('base64')), 'bad_signature');
    expectCode(signed.replace(`${ORIGIN}\n1234567`, `${ORIGIN}x\n1234567`), 'bad_signature');
  });

  it('rejects a tampered signature', () => {
    const line = signed.split('\n')[4]!;
    const raw = Buffer.from(line.split(' ')[2]!, 'base64');
    for (const byte of [4, 40, 67]) {
      const bad = Buffer.from(raw);
      bad[byte]! ^= 0x10;
      expectCode(signed.replace(line, `\u2014 ${ORIGIN} ${bad.toString('base64')}`), 'bad_signature');
    }
    const short = raw.subarray(0, 60).toString('base64');
    expectCode(signed.replace(line, `\u2014 ${ORIGIN} ${short}`), 'bad_signature');
  });

  it('rejects the wrong key', () => {
    expectCode(signed, 'unknown_key', generateSigner(ORIGIN).verifierKey);
    expectCode(signed, 'unknown_key', generateSigner('other.example/log').verifierKey);
    expectCode(signed, 'bad_verifier_key', 'not a key');
  });

  it('rejects a head from another log signed by the same key when the origin is pinned', () => {
    expectCode(signCheckpoint(signer, { ...cp, origin: 'other.example/log' }), 'origin_mismatch');
  });

  it('finds our signature among cosignatures', () => {
    const witness = generateSigner('witness.example');
    const both = signCheckpoint([witness, signer], cp);
    expect(verifyCheckpoint(both, signer.verifierKey).ok).toBe(true);
    expect(verifyCheckpoint(both, witness.verifierKey).ok).toBe(true);
    expect(parseCheckpoint(both).signatures.map((s) => s.keyName)).toEqual(['witness.example', ORIGIN]);
  });

  it('rejects malformed checkpoints', () => {
    const sig = signed.slice(signed.indexOf('\n\n'));
    const bad = [
      '',
      signed.replace('\n\n', '\n'), // no blank line
      signed.slice(0, signed.indexOf('\n\n') + 2), // no signatures
      signed.slice(0, -1), // no final newline
      signed.replace(/\n/g, '\r\n'), // CRLF
      signed.replace('\u2014', '-'), // ASCII dash
      `${ORIGIN}\n01234567\n${ROOT.toString('base64')}${sig}`, // leading zero
      `${ORIGIN}\n-1\n${ROOT.toString('base64')}${sig}`,
      `${ORIGIN}\n9007199254740992\n${ROOT.toString('base64')}${sig}`, // beyond 2^53 - 1
      `${ORIGIN}\n5\n${ROOT.subarray(0, 31).toString('base64')}${sig}`, // short root
      `${ORIGIN}\n5\n${ROOT.toString('base64').replace('=', '')}${sig}`, // unpadded base64
      `\n5\n${ROOT.toString('base64')}${sig}`, // empty origin
      `${ORIGIN}\n5\n${sig}`, // missing root
    ];
    for (const text of bad) {
      expect(() => parseCheckpoint(text), JSON.stringify(text)).toThrow(CheckpointError);
      expectCode(text, 'malformed');
    }
    expect(verifyCheckpoint(Buffer.from([0xff, 0x0a, 0x0a]), signer.verifierKey)).toMatchObject({
      ok: false,
      code: 'malformed',
    });
  });

  it('refuses to sign an invalid checkpoint', () => {
    expect(() => signCheckpoint(signer, { ...cp, origin: '' })).toThrow(CheckpointError);
    expect(() => signCheckpoint(signer, { ...cp, origin: 'a\nb' })).toThrow(CheckpointError);
    expect(() => signCheckpoint(signer, { ...cp, size: -1 })).toThrow(CheckpointError);
    expect(() => signCheckpoint(signer, { ...cp, size: 1.5 })).toThrow(CheckpointError);
    expect(() => signCheckpoint(signer, { ...cp, root: Buffer.alloc(31) })).toThrow(CheckpointError);
    expect(() => signNote(signer, 'no newline')).toThrow(CheckpointError);
    expect(() => signNote(signer, 'tab\there\n')).toThrow(CheckpointError);
  });

  it('never throws on arbitrary input', () => {
    const verifier = parseVerifierKey(signer.verifierKey);
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constant(signed)), fc.nat(), (text, cut) => {
        const mutated = text === signed ? signed.slice(0, cut % signed.length) + signed.slice((cut % signed.length) + 1) : text;
        const r = verifyCheckpoint(mutated, verifier);
        expect(typeof r.ok).toBe('boolean');
        if (mutated !== signed) expect(r.ok).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});
