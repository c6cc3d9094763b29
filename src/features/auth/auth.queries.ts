import type { Role } from '../../platform/auth.js';
import type { Queryable } from '../../platform/db/index.js';

export interface UserRow {
  id: string;
  email: string;
  name: string;
  password_hash: string;
  created_at: Date;
  disabled_at: Date | null;
}

export interface MembershipRow {
  org_id: string;
  org_slug: string;
  org_name: string;
  role: Role;
}

export interface SessionRow {
  id: string;
  user_id: string;
  org_id: string;
  created_at: Date;
  last_used_at: Date;
  expires_at: Date;
  revoked_at: Date | null;
}

/** What a request needs to trust an access token: is the session alive, what role now. */
export interface LiveSessionRow {
  session_id: string;
  user_id: string;
  org_id: string;
  email: string;
  role: Role | null;
  expires_at: Date;
  revoked_at: Date | null;
  disabled_at: Date | null;
}

export interface ApiTokenRow {
  id: string;
  org_id: string;
  user_id: string;
  name: string;
  token_prefix: string;
  scopes: string[];
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

export interface LiveApiTokenRow extends ApiTokenRow {
  role: Role | null;
  disabled_at: Date | null;
}

export async function findUserByEmail(db: Queryable, email: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>('SELECT * FROM users WHERE lower(email) = lower($1)', [email]);
  return rows[0];
}

export async function insertUser(db: Queryable, u: { email: string; name: string; passwordHash: string }): Promise<UserRow> {
  const { rows } = await db.query<UserRow>('INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3) RETURNING *', [
    u.email,
    u.name,
    u.passwordHash,
  ]);
  return rows[0]!;
}

export async function countUsers(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
  return rows[0]!.n;
}

export async function listMembershipsOfUser(db: Queryable, userId: string): Promise<MembershipRow[]> {
  const { rows } = await db.query<MembershipRow>(
    `SELECT m.org_id, o.slug AS org_slug, o.name AS org_name, m.role
       FROM memberships m JOIN organizations o ON o.id = m.org_id
      WHERE m.user_id = $1 ORDER BY m.created_at, o.slug`,
    [userId],
  );
  return rows;
}

export async function insertSession(
  db: Queryable,
  s: { userId: string; orgId: string; expiresAt: Date; clientIp: string | null; userAgent: string | null },
): Promise<SessionRow> {
  const { rows } = await db.query<SessionRow>(
    `INSERT INTO sessions (user_id, org_id, expires_at, client_ip, user_agent)
     VALUES ($1, $2, $3, $4, $5) RETURNING *`,
    [s.userId, s.orgId, s.expiresAt, s.clientIp, s.userAgent],
  );
  return rows[0]!;
}

export async function insertRefreshToken(db: Queryable, sessionId: string, hash: Buffer): Promise<void> {
  await db.query('INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)', [hash, sessionId]);
}

/**
 * Marks a refresh token used, atomically: of two concurrent refreshes with the same token
 * exactly one gets the session back.
 */
export async function rotateRefreshToken(db: Queryable, hash: Buffer): Promise<SessionRow | undefined> {
  const { rows } = await db.query<SessionRow>(
    `WITH used AS (
       UPDATE refresh_tokens SET rotated_at = now()
        WHERE token_hash = $1 AND rotated_at IS NULL
        RETURNING session_id)
     UPDATE sessions s SET last_used_at = now() FROM used WHERE s.id = used.session_id RETURNING s.*`,
    [hash],
  );
  return rows[0];
}

export async function findSessionOfRefreshToken(db: Queryable, hash: Buffer): Promise<SessionRow | undefined> {
  const { rows } = await db.query<SessionRow>(
    'SELECT s.* FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1',
    [hash],
  );
  return rows[0];
}

export async function revokeSession(db: Queryable, sessionId: string, reason: string): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL',
    [sessionId, reason],
  );
  return rowCount > 0;
}

export async function findLiveSession(db: Queryable, sessionId: string): Promise<LiveSessionRow | undefined> {
  const { rows } = await db.query<LiveSessionRow>(
    `SELECT s.id AS session_id, s.user_id, s.org_id, u.email, m.role, s.expires_at, s.revoked_at, u.disabled_at
       FROM sessions s
       JOIN users u ON u.id = s.user_id
       LEFT JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id
      WHERE s.id = $1`,
    [sessionId],
  );
  return rows[0];
}

export async function findSession(db: Queryable, sessionId: string): Promise<SessionRow | undefined> {
  const { rows } = await db.query<SessionRow>('SELECT * FROM sessions WHERE id = $1', [sessionId]);
  return rows[0];
}

export async function insertApiToken(
  db: Queryable,
  t: { orgId: string; userId: string; name: string; hash: Buffer; prefix: string; scopes: string[]; expiresAt: Date | null },
): Promise<ApiTokenRow> {
  const { rows } = await db.query<ApiTokenRow>(
    `INSERT INTO api_tokens (org_id, user_id, name, token_hash, token_prefix, scopes, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     RETURNING id, org_id, user_id, name, token_prefix, scopes, created_at, expires_at, last_used_at, revoked_at`,
    [t.orgId, t.userId, t.name, t.hash, t.prefix, t.scopes, t.expiresAt],
  );
  return rows[0]!;
}

export async function findLiveApiToken(db: Queryable, hash: Buffer): Promise<LiveApiTokenRow | undefined> {
  const { rows } = await db.query<LiveApiTokenRow>(
    `SELECT t.id, t.org_id, t.user_id, t.name, t.token_prefix, t.scopes, t.created_at, t.expires_at,
            t.last_used_at, t.revoked_at, m.role, u.disabled_at
       FROM api_tokens t
       JOIN users u ON u.id = t.user_id
       LEFT JOIN memberships m ON m.org_id = t.org_id AND m.user_id = t.user_id
      WHERE t.token_hash = $1`,
    [hash],
  );
  return rows[0];
}

export async function touchApiToken(db: Queryable, tokenId: string): Promise<void> {
  await db.query('UPDATE api_tokens SET last_used_at = now() WHERE id = $1', [tokenId]);
}

const TOKEN_COLUMNS = 'id, org_id, user_id, name, token_prefix, scopes, created_at, expires_at, last_used_at, revoked_at';

export async function listApiTokensOfUser(db: Queryable, orgId: string, userId: string): Promise<ApiTokenRow[]> {
  const { rows } = await db.query<ApiTokenRow>(
    `SELECT ${TOKEN_COLUMNS} FROM api_tokens WHERE org_id = $1 AND user_id = $2 ORDER BY created_at DESC LIMIT 500`,
    [orgId, userId],
  );
  return rows;
}

export async function findApiToken(db: Queryable, orgId: string, tokenId: string): Promise<ApiTokenRow | undefined> {
  const { rows } = await db.query<ApiTokenRow>(`SELECT ${TOKEN_COLUMNS} FROM api_tokens WHERE org_id = $1 AND id = $2`, [
    orgId,
    tokenId,
  ]);
  return rows[0];
}

export async function revokeApiToken(db: Queryable, orgId: string, tokenId: string): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE api_tokens SET revoked_at = now() WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL',
    [orgId, tokenId],
  );
  return rowCount > 0;
}

export async function readSetting(db: Queryable, key: string): Promise<string | undefined> {
  const { rows } = await db.query<{ value: string }>('SELECT value FROM instance_settings WHERE key = $1', [key]);
  return rows[0]?.value;
}

/** First writer wins, so replicas booting together agree on one value. */
export async function readOrCreateSetting(db: Queryable, key: string, candidate: string): Promise<string> {
  await db.query('INSERT INTO instance_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', [key, candidate]);
  return (await readSetting(db, key))!;
}
