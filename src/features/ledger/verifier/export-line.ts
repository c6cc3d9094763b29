// Reading one export line. The server writes `{"index":…,"leaf_hash":"…","kind":"…"}`
// plus `,"content":<canonical JSON>` for the caller's own leaves. For a line of exactly
// that shape the content's bytes can be hashed as they stand: if they hash to the leaf
// hash they are the committed bytes (hence valid JSON), with no parsing and no
// re-canonicalizing. Anything else (a reformatted file, a mismatch, `null` content) goes
// through JSON.parse and RFC 8785. A million-line export is read in seconds, so the fast
// path works on bytes in place and allocates nothing per line.
import { canonicalLeafBytes, leafHash } from '../merkle/index.js';
import { VerifyError, decodeHash } from './client.js';

/** What a line says about its content: verified, absent (another tenant's leaf) or bad. */
export type ContentResult = { verified: boolean; error?: VerifyError };

const NO_CONTENT: ContentResult = Object.freeze({ verified: false });
const INDEX = Buffer.from('{"index":');
const HASH = Buffer.from(',"leaf_hash":"');
const KIND = Buffer.from('","kind":"');
const CONTENT = Buffer.from(',"content":');

const BASE64 = new Int16Array(256).fill(-1);
[...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].forEach((c, v) => (BASE64[c.charCodeAt(0)] = v));

function matches(block: Buffer, p: number, bytes: Uint8Array): boolean {
  if (p + bytes.length > block.length) return false;
  for (let k = 0; k < bytes.length; k++) if (block[p + k] !== bytes[k]) return false;
  return true;
}

/** Decodes the 44-character canonical base64 of a 32-byte hash at block[p] into `out`. */
function decodeHashAt(block: Buffer, p: number, out: Buffer): boolean {
  if (block[p + 43] !== 0x3d) return false; // '='
  let o = 0;
  for (let g = 0; g < 10; g++, p += 4) {
    const a = BASE64[block[p]!]!,
      b = BASE64[block[p + 1]!]!,
      c = BASE64[block[p + 2]!]!,
      d = BASE64[block[p + 3]!]!;
    if ((a | b | c | d) < 0) return false;
    const v = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = v >> 16;
    out[o++] = (v >> 8) & 0xff;
    out[o++] = v & 0xff;
  }
  const a = BASE64[block[p]!]!,
    b = BASE64[block[p + 1]!]!,
    c = BASE64[block[p + 2]!]!;
  if ((a | b | c) < 0 || (c & 3) !== 0) return false; // canonical: no stray low bits
  const v = (a << 18) | (b << 12) | (c << 6);
  out[o++] = v >> 16;
  out[o] = (v >> 8) & 0xff;
  return true;
}

/** Where a server-shaped line's content starts (it ends before the final `}`), -1 if none, or null. */
function serverShape(block: Buffer, start: number, end: number, i: number, hashOut: Buffer): number | null {
  if (!matches(block, start, INDEX)) return null;
  let p = start + INDEX.length;
  const digits = p;
  let index = 0;
  while (p < end && block[p]! >= 0x30 && block[p]! <= 0x39) index = index * 10 + (block[p++]! - 0x30);
  if (index !== i || p === digits || p - digits > 15 || (block[digits] === 0x30 && p - digits > 1)) return null;
  if (!matches(block, p, HASH) || !decodeHashAt(block, p + HASH.length, hashOut)) return null;
  p += HASH.length + 44;
  if (!matches(block, p, KIND)) return null;
  p += KIND.length;
  // kind: [a-z_.-]*
  for (let b = block[p]!; p < end && ((b >= 0x61 && b <= 0x7a) || b === 0x5f || b === 0x2e || b === 0x2d); b = block[++p]!);
  if (block[p] !== 0x22 || block[end - 1] !== 0x7d) return null;
  p++;
  if (p === end - 1) return -1;
  return matches(block, p, CONTENT) ? p + CONTENT.length : null;
}

/**
 * Reads leaf line `i` (block[start, end)): writes its leaf hash into `hashOut` and returns
 * where its server-shaped content starts (to be hashed, up to end - 1), or the content
 * result when it was checked here. Throws a VerifyError for a broken line.
 */
export function readLeafLine(block: Buffer, start: number, end: number, i: number, hashOut: Buffer): number | ContentResult {
  const contentStart = serverShape(block, start, end, i, hashOut);
  if (contentStart !== null) return contentStart === -1 ? NO_CONTENT : contentStart;
  const entry = parseJson(block, start, end, i);
  if (entry.index !== i)
    throw new VerifyError('leaf_missing', `leaf ${i} is missing from the export (found ${String(entry.index)})`, i);
  decodeHash(entry.leaf_hash, `leaf ${i}'s hash`, i).copy(hashOut);
  return checkParsedContent(entry.content, hashOut, i);
}

/** The careful check of a line whose content bytes did not hash to its leaf hash. */
export function recheckContent(block: Buffer, start: number, end: number, i: number, hash: Buffer): ContentResult {
  try {
    return checkParsedContent(parseJson(block, start, end, i).content, hash, i);
  } catch (error) {
    if (error instanceof VerifyError) return { verified: false, error };
    throw error;
  }
}

function parseJson(
  block: Buffer,
  start: number,
  end: number,
  i: number,
): { index?: unknown; leaf_hash?: unknown; content?: unknown } {
  try {
    return JSON.parse(block.toString('utf8', start, end)) as { index?: unknown; leaf_hash?: unknown; content?: unknown };
  } catch {
    throw new VerifyError('malformed', `the line of leaf ${i} is not JSON`, i);
  }
}

function checkParsedContent(content: unknown, hash: Buffer, i: number): ContentResult {
  if (content === undefined) return NO_CONTENT;
  if (content === null)
    return { verified: false, error: new VerifyError('record_missing', `leaf ${i}: the record it commits to is gone`, i) };
  if (leafHash(canonicalLeafBytes(content)).equals(hash)) return { verified: true };
  return {
    verified: false,
    error: new VerifyError('content_mismatch', `leaf ${i}: its content does not hash to its leaf hash`, i),
  };
}

/** Both steps for one line, in this thread (tests). */
export function checkLine(line: Buffer, i: number): { hash: Buffer; result: ContentResult } {
  const hash = Buffer.alloc(32);
  const read = readLeafLine(line, 0, line.length, i, hash);
  if (typeof read !== 'number') return { hash, result: read };
  if (leafHash(line.subarray(read, line.length - 1)).equals(hash)) return { hash, result: { verified: true } };
  return { hash, result: recheckContent(line, 0, line.length, i, hash) };
}
