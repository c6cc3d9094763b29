// Token formats. Access tokens are short-lived HS256 JWTs; refresh and API tokens are
// opaque random strings with a recognizable prefix (so secret scanners can find leaked
// ones) and are stored only as SHA-256 hashes: they carry 256 bits of entropy, so a fast
// hash is enough and keeps lookups a single indexed read.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';

export const ISSUER = 'cairn';
export const AUDIENCE = 'cairn-api';
export const API_TOKEN_PREFIX = 'cairn_pat_';
export const REFRESH_TOKEN_PREFIX = 'cairn_rt_';
/** An agent's own credential, issued at registration. */
export const AGENT_TOKEN_PREFIX = 'cairn_agt_';
/** A pool's registration token: can only register agents into that pool. */
export const REGISTRATION_TOKEN_PREFIX = 'cairn_reg_';
/** A job's own credential, handed to its shell: valid only while that lease is current. */
export const JOB_TOKEN_PREFIX = 'cairn_job_';

const JOB_TOKEN = /^cairn_job_([0-9a-f-]{36})\.([A-Za-z0-9_-]{43})$/;

/**
 * The job-token key, derived once per instance secret (never changed in place): deriving
 * it on every call was half of what signing or checking a job token cost.
 */
const jobTokenKeys = new WeakMap<Uint8Array, Buffer>();

function jobTokenMac(secret: Uint8Array, jobId: string, leaseToken: string): Buffer {
  // A key of its own, derived from the instance secret, so a job token can never be
  // mistaken for (or help forge) an access token.
  let key = jobTokenKeys.get(secret);
  if (!key) jobTokenKeys.set(secret, (key = createHmac('sha256', secret).update('cairn job tokens v1').digest()));
  return createHmac('sha256', key).update(`${jobId}:${leaseToken}`).digest();
}

/**
 * Job tokens need no storage: they are a MAC of the job id and its lease token, so they
 * stop working the moment the lease changes (the attempt ends, the job is retried).
 */
export function signJobToken(secret: Uint8Array, jobId: string, leaseToken: string): string {
  return `${JOB_TOKEN_PREFIX}${jobId}.${jobTokenMac(secret, jobId, leaseToken).toString('base64url')}`;
}

export function parseJobToken(token: string): { jobId: string; mac: Buffer } | null {
  const match = JOB_TOKEN.exec(token);
  return match ? { jobId: match[1]!, mac: Buffer.from(match[2]!, 'base64url') } : null;
}

export function jobTokenMatches(secret: Uint8Array, jobId: string, leaseToken: string, mac: Buffer): boolean {
  const expected = jobTokenMac(secret, jobId, leaseToken);
  return mac.length === expected.length && timingSafeEqual(mac, expected);
}

export function newOpaqueToken(prefix: string): { token: string; hash: Buffer } {
  const token = prefix + randomBytes(32).toString('base64url');
  return { token, hash: hashToken(token) };
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export interface AccessClaims {
  sub: string;
  org: string;
  sid: string;
}

export async function signAccessToken(secret: Uint8Array, claims: AccessClaims, ttlSeconds: number): Promise<string> {
  return new SignJWT({ org: claims.org, sid: claims.sid })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(secret);
}

export type AccessTokenResult =
  { ok: true; claims: AccessClaims; expiresAt: number } | { ok: false; reason: 'expired' | 'invalid' };

/** Only HS256 with our issuer and audience passes: `alg: none` and foreign tokens fail. */
export async function verifyAccessToken(secret: Uint8Array, token: string): Promise<AccessTokenResult> {
  try {
    const { payload } = await jwtVerify(token, secret, { algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE });
    if (
      typeof payload.sub !== 'string' ||
      typeof payload.org !== 'string' ||
      typeof payload.sid !== 'string' ||
      typeof payload.exp !== 'number'
    ) {
      return { ok: false, reason: 'invalid' };
    }
    return { ok: true, claims: { sub: payload.sub, org: payload.org, sid: payload.sid }, expiresAt: payload.exp };
  } catch (error) {
    return { ok: false, reason: error instanceof joseErrors.JWTExpired ? 'expired' : 'invalid' };
  }
}
