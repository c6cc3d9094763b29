// Webhook secrets and signatures. A project's secret is needed in clear to compute
// GitHub's HMAC, so it is stored sealed (AES-256-GCM, key derived by HKDF from the
// instance secret, the project id as associated data so a sealed secret cannot be moved to
// another project) rather than hashed. Every comparison is constant-time.
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

const INFO = 'cairn webhook secrets v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

function keyOf(instanceSecret: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', instanceSecret, 'cairn', INFO, 32));
}

/** A new secret to paste into GitHub or GitLab: 32 random bytes, hex (what their forms accept). */
export function newWebhookSecret(): string {
  return randomBytes(32).toString('hex');
}

export function sealSecret(instanceSecret: Uint8Array, projectId: string, secret: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keyOf(instanceSecret), iv);
  cipher.setAAD(Buffer.from(projectId));
  const body = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

/** The secret, or null when it cannot be opened (the instance secret changed, or the row was tampered with). */
export function openSecret(instanceSecret: Uint8Array, projectId: string, sealed: Buffer): string | null {
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyOf(instanceSecret), sealed.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(projectId));
    decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    return null;
  }
}

const SIGNATURE = /^sha256=([0-9a-fA-F]{64})$/;

/** GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`. */
export function githubSignatureValid(secret: string, rawBody: Buffer, header: string | undefined): boolean {
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  const given = SIGNATURE.exec(header ?? '')?.[1];
  // Compared even when the header is absent or malformed, so every refusal costs the same.
  const actual = given ? Buffer.from(given, 'hex') : Buffer.alloc(expected.length);
  return timingSafeEqual(expected, actual) && given !== undefined;
}

/** GitLab: `X-Gitlab-Token` is the secret itself; hashing both first makes the lengths equal. */
export function gitlabTokenValid(secret: string, header: string | undefined): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(secret), digest(header ?? '')) && header !== undefined;
}

/** Spent when the project is unknown, so that answer takes as long as a wrong signature. */
export const DECOY_SECRET = randomBytes(32).toString('hex');
