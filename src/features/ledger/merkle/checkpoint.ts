import { createPrivateKey, createPublicKey, generateKeyPairSync, hash, sign, verify, type KeyObject } from 'node:crypto';
import { HASH_SIZE } from './hash.js';

// C2SP signed-note (https://c2sp.org/signed-note) and tlog-checkpoint
// (https://c2sp.org/tlog-checkpoint), Ed25519 only. Byte-compatible with Go's
// golang.org/x/mod/sumdb/note so off-the-shelf witnesses can check our heads.

/** Signature type byte for Ed25519 in signed-note key ids and verifier keys. */
export const ALG_ED25519 = 0x01;
const SIG_PREFIX = '\u2014 '; // EM DASH + space, as the spec requires
const MAX_SIGNATURES = 100; // Go's limit; bounds work on hostile input
// Fixed PKCS#8 header for a raw Ed25519 seed (RFC 8410); JWK import needs the
// public key too, which is what we are trying to derive.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export type CheckpointErrorCode = 'malformed' | 'bad_verifier_key' | 'unknown_key' | 'bad_signature' | 'origin_mismatch';

export class CheckpointError extends Error {
  readonly code: CheckpointErrorCode;
  constructor(code: CheckpointErrorCode, message: string) {
    super(message);
    this.name = 'CheckpointError';
    this.code = code;
  }
}

export interface NoteVerifier {
  keyName: string;
  keyId: Buffer; // 4 bytes
  publicKey: Buffer; // 32-byte raw Ed25519 key
  verifierKey: string;
}

export interface NoteSigner extends NoteVerifier {
  /** 32-byte Ed25519 seed: the only secret the server needs to persist. */
  seed: Buffer;
  privateKey: KeyObject;
}

export interface NoteSignature {
  keyName: string;
  keyId: Buffer;
  signature: Buffer; // without the key id prefix
}

export interface Checkpoint {
  origin: string;
  size: number;
  root: Buffer;
  /** Optional extension lines after the root hash (without newlines). */
  extensions?: string[];
}

export interface ParsedCheckpoint extends Checkpoint {
  extensions: string[];
  /** The signed text: everything before the blank line, final newline included. */
  body: string;
  signatures: NoteSignature[];
}

export type VerifyCheckpointResult =
  | { ok: true; checkpoint: ParsedCheckpoint; signature: NoteSignature }
  | { ok: false; code: CheckpointErrorCode; message: string };

/** signed-note key names: non-empty, no whitespace, no '+' (it delimits verifier keys). */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+]/u.test(name) && isWellFormed(name);
}

function isWellFormed(s: string): boolean {
  return Buffer.from(s, 'utf8').toString('utf8') === s;
}

/** Decodes base64 only in its canonical padded form, so one value has one spelling. */
function decodeBase64Strict(s: string): Buffer | undefined {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  const buf = Buffer.from(s, 'base64');
  return buf.toString('base64') === s ? buf : undefined;
}

/** First 4 bytes of SHA-256(keyName || "\n" || 0x01 || publicKey). */
export function computeKeyId(keyName: string, publicKey: Uint8Array): Buffer {
  const digest = hash(
    'sha256',
    Buffer.concat([Buffer.from(`${keyName}\n`, 'utf8'), Buffer.from([ALG_ED25519]), publicKey]),
    'buffer',
  );
  return digest.subarray(0, 4);
}

/** `name+hex8(keyId)+base64(0x01 || publicKey)`, the sumdb/note verifier key string. */
export function formatVerifierKey(keyName: string, publicKey: Uint8Array): string {
  if (!isValidKeyName(keyName)) throw new CheckpointError('bad_verifier_key', `invalid key name ${JSON.stringify(keyName)}`);
  if (publicKey.length !== 32) throw new CheckpointError('bad_verifier_key', 'Ed25519 public key must be 32 bytes');
  const keyData = Buffer.concat([Buffer.from([ALG_ED25519]), publicKey]).toString('base64');
  return `${keyName}+${computeKeyId(keyName, publicKey).toString('hex')}+${keyData}`;
}

export function parseVerifierKey(text: string): NoteVerifier {
  function fail(why: string): never {
    throw new CheckpointError('bad_verifier_key', `verifier key: ${why}`);
  }
  // Split only on the first two '+': base64 key data may contain '+' itself.
  const first = text.indexOf('+');
  const second = first < 0 ? -1 : text.indexOf('+', first + 1);
  if (second < 0) fail('expected name+hash+key');
  const keyName = text.slice(0, first);
  const hex = text.slice(first + 1, second);
  const keyData = decodeBase64Strict(text.slice(second + 1));
  if (!isValidKeyName(keyName)) fail('invalid key name');
  if (!/^[0-9a-f]{8}$/i.test(hex)) fail('key hash must be 8 hex digits');
  if (keyData === undefined) fail('key data is not canonical base64');
  if (keyData[0] !== ALG_ED25519 || keyData.length !== 33) fail('only Ed25519 keys are supported');
  const publicKey = Buffer.from(keyData.subarray(1));
  const keyId = computeKeyId(keyName, publicKey);
  if (keyId.toString('hex') !== hex.toLowerCase()) fail('key hash does not match key');
  return { keyName, keyId, publicKey, verifierKey: formatVerifierKey(keyName, publicKey) };
}

function signerFromKeyObject(keyName: string, privateKey: KeyObject): NoteSigner {
  if (!isValidKeyName(keyName)) throw new CheckpointError('bad_verifier_key', `invalid key name ${JSON.stringify(keyName)}`);
  const jwk = privateKey.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.d !== 'string' || typeof jwk.x !== 'string') {
    throw new CheckpointError('bad_verifier_key', 'not an Ed25519 private key');
  }
  const publicKey = Buffer.from(jwk.x, 'base64url');
  return {
    keyName,
    keyId: computeKeyId(keyName, publicKey),
    publicKey,
    verifierKey: formatVerifierKey(keyName, publicKey),
    seed: Buffer.from(jwk.d, 'base64url'),
    privateKey,
  };
}

export function generateSigner(keyName: string): NoteSigner {
  return signerFromKeyObject(keyName, generateKeyPairSync('ed25519').privateKey);
}

/** Rebuilds a signer from its persisted 32-byte seed (Ed25519 signing is deterministic). */
export function signerFromSeed(keyName: string, seed: Uint8Array): NoteSigner {
  if (seed.length !== 32) throw new CheckpointError('bad_verifier_key', 'Ed25519 seed must be 32 bytes');
  const der = Buffer.concat([PKCS8_ED25519_PREFIX, seed]);
  return signerFromKeyObject(keyName, createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
}

/** Go's rule: valid UTF-8 and no ASCII control characters except newline. */
function isValidNoteText(text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return isWellFormed(text) && !/[\u0000-\u0009\u000b-\u001f]/.test(text);
}

/** Signs arbitrary note text (must end in a newline) with one or more keys. */
export function signNote(signers: NoteSigner | readonly NoteSigner[], text: string): string {
  const list = Array.isArray(signers) ? signers : [signers as NoteSigner];
  if (list.length === 0) throw new RangeError('at least one signer is required');
  if (!text.endsWith('\n') || !isValidNoteText(text)) throw new CheckpointError('malformed', 'invalid note text');
  const bytes = Buffer.from(text, 'utf8');
  const lines = list.map((s) => {
    const sig = sign(null, bytes, s.privateKey);
    return `${SIG_PREFIX}${s.keyName} ${Buffer.concat([s.keyId, sig]).toString('base64')}\n`;
  });
  return `${text}\n${lines.join('')}`;
}

/** Splits a signed note into its text and signature lines without verifying anything. */
export function parseNote(input: string | Uint8Array): { body: string; signatures: NoteSignature[] } {
  function fail(why: string): never {
    throw new CheckpointError('malformed', `note: ${why}`);
  }
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(input);
    } catch {
      return fail('not valid UTF-8');
    }
  }
  if (!isValidNoteText(text)) fail('invalid UTF-8 or control characters');
  const split = text.lastIndexOf('\n\n');
  if (split < 0) fail('missing blank line before signatures');
  const body = text.slice(0, split + 1);
  const sigBlock = text.slice(split + 2);
  if (sigBlock.length === 0 || !sigBlock.endsWith('\n')) fail('signature block must end in a newline');
  const lines = sigBlock.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) fail('too many signatures');
  const signatures = lines.map((line) => {
    if (!line.startsWith(SIG_PREFIX)) fail('signature line must start with an em dash');
    const rest = line.slice(SIG_PREFIX.length);
    const space = rest.indexOf(' ');
    const keyName = space < 0 ? '' : rest.slice(0, space);
    const raw = space < 0 ? undefined : decodeBase64Strict(rest.slice(space + 1));
    if (!isValidKeyName(keyName) || raw === undefined || raw.length < 5) fail('bad signature line');
    return { keyName, keyId: Buffer.from(raw.subarray(0, 4)), signature: Buffer.from(raw.subarray(4)) };
  });
  return { body, signatures };
}

export function formatCheckpointBody(cp: Checkpoint): string {
  if (cp.origin.length === 0 || cp.origin.includes('\n')) throw new CheckpointError('malformed', 'invalid origin');
  if (!Number.isSafeInteger(cp.size) || cp.size < 0) throw new CheckpointError('malformed', 'invalid size');
  if (cp.root.length !== HASH_SIZE) throw new CheckpointError('malformed', 'root must be 32 bytes');
  const ext = cp.extensions ?? [];
  if (ext.some((l) => l.length === 0 || l.includes('\n'))) throw new CheckpointError('malformed', 'invalid extension line');
  return [cp.origin, String(cp.size), Buffer.from(cp.root).toString('base64'), ...ext].map((l) => `${l}\n`).join('');
}

export function signCheckpoint(signers: NoteSigner | readonly NoteSigner[], cp: Checkpoint): string {
  return signNote(signers, formatCheckpointBody(cp));
}

/** Parses a signed checkpoint; throws CheckpointError('malformed') on any format violation. */
export function parseCheckpoint(input: string | Uint8Array): ParsedCheckpoint {
  const { body, signatures } = parseNote(input);
  const lines = body.slice(0, -1).split('\n');
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (origin === undefined || origin.length === 0) throw new CheckpointError('malformed', 'checkpoint: empty origin');
  // No leading zeros or signs, so each size has exactly one spelling.
  if (sizeText === undefined || !/^(0|[1-9][0-9]*)$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    throw new CheckpointError('malformed', 'checkpoint: bad tree size');
  }
  const root = rootText === undefined ? undefined : decodeBase64Strict(rootText);
  if (root === undefined || root.length !== HASH_SIZE) throw new CheckpointError('malformed', 'checkpoint: bad root hash');
  if (extensions.some((l) => l.length === 0)) throw new CheckpointError('malformed', 'checkpoint: empty extension line');
  return { origin, size: Number(sizeText), root, extensions, body, signatures };
}

/**
 * Checks that `input` is a well-formed checkpoint carrying a valid signature
 * by `verifierKey`. Never throws. Signatures by other keys are ignored (they
 * may be witness cosignatures), but a signature that claims to be from this
 * key and fails is an error rather than skipped, as in Go's note.Open.
 * Pass `expectedOrigin` so a head from another log signed by the same key is
 * not mistaken for ours.
 */
export function verifyCheckpoint(
  input: string | Uint8Array,
  verifierKey: string | NoteVerifier,
  options: { expectedOrigin?: string } = {},
): VerifyCheckpointResult {
  try {
    const v = typeof verifierKey === 'string' ? parseVerifierKey(verifierKey) : verifierKey;
    const cp = parseCheckpoint(input);
    const mine = cp.signatures.filter((s) => s.keyName === v.keyName && s.keyId.equals(v.keyId));
    const first = mine[0];
    if (first === undefined) {
      return { ok: false, code: 'unknown_key', message: `no signature by ${v.keyName}+${v.keyId.toString('hex')}` };
    }
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: v.publicKey.toString('base64url') },
      format: 'jwk',
    });
    const body = Buffer.from(cp.body, 'utf8');
    for (const s of mine) {
      if (s.signature.length !== 64 || !verify(null, body, key, s.signature)) {
        return { ok: false, code: 'bad_signature', message: `invalid signature by ${v.keyName}` };
      }
    }
    if (options.expectedOrigin !== undefined && cp.origin !== options.expectedOrigin) {
      return {
        ok: false,
        code: 'origin_mismatch',
        message: `origin ${JSON.stringify(cp.origin)} is not the expected one`,
      };
    }
    return { ok: true, checkpoint: cp, signature: first };
  } catch (err) {
    if (err instanceof CheckpointError) return { ok: false, code: err.code, message: err.message };
    return { ok: false, code: 'malformed', message: err instanceof Error ? err.message : String(err) };
  }
}
