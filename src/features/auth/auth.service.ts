import type { AuthContext } from '../../platform/auth.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { NotFoundError, TooManyRequestsError, UnauthorizedError } from '../../platform/errors.js';
import { recordAudit } from '../audit/audit.record.js';
import { AUTH_TOPIC } from './authenticate.js';
import {
  findSession,
  findSessionOfRefreshToken,
  findUserByEmail,
  insertRefreshToken,
  insertSession,
  listMembershipsOfUser,
  revokeSession,
  rotateRefreshToken,
  type SessionRow,
} from './auth.queries.js';
import { DUMMY_PASSWORD_HASH, verifyPassword } from './passwords.js';
import { REFRESH_TOKEN_PREFIX, hashToken, newOpaqueToken, signAccessToken } from './tokens.js';

type Deps = Pick<AppDeps, 'db' | 'bus' | 'cache' | 'config' | 'jwtSecret'>;

export interface TokenPair {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  session_id: string;
  organization_id: string;
}

const FAILED_LOGIN_LIMIT = 10;
const FAILED_LOGIN_WINDOW_MS = 15 * 60_000;

async function issueTokens(deps: Deps, tx: Queryable, session: SessionRow): Promise<TokenPair> {
  const refresh = newOpaqueToken(REFRESH_TOKEN_PREFIX);
  await insertRefreshToken(tx, session.id, refresh.hash);
  const accessToken = await signAccessToken(
    deps.jwtSecret,
    { sub: session.user_id, org: session.org_id, sid: session.id },
    deps.config.accessTokenTtlSeconds,
  );
  return {
    access_token: accessToken,
    token_type: 'Bearer',
    expires_in: deps.config.accessTokenTtlSeconds,
    refresh_token: refresh.token,
    session_id: session.id,
    organization_id: session.org_id,
  };
}

export async function login(
  deps: Deps,
  input: { email: string; password: string; organization?: string },
  meta: { requestId: string; clientIp: string | null; userAgent: string | null },
): Promise<TokenPair> {
  // Throttled per account (across replicas when Redis is there), so password guessing is
  // slow even when spread over many IPs.
  const throttleKey = `login-failures:${input.email.toLowerCase()}`;
  const failures = Number((await deps.cache.get(throttleKey)) ?? 0);
  if (failures >= FAILED_LOGIN_LIMIT) {
    throw new TooManyRequestsError('Too many failed logins for this account; try again later.', FAILED_LOGIN_WINDOW_MS / 1000);
  }
  const user = await findUserByEmail(deps.db, input.email);
  const passwordOk = await verifyPassword(input.password, user?.password_hash ?? DUMMY_PASSWORD_HASH);
  if (!user || !passwordOk || user.disabled_at) {
    await deps.cache.increment(throttleKey, FAILED_LOGIN_WINDOW_MS);
    throw new UnauthorizedError('The email or password is wrong.', 'invalid_login');
  }
  const memberships = await listMembershipsOfUser(deps.db, user.id);
  const membership = input.organization
    ? memberships.find((m) => m.org_slug === input.organization || m.org_id === input.organization)
    : memberships[0];
  if (!membership) throw new UnauthorizedError('You are not a member of that organization.', 'no_membership');
  await deps.cache.delete(throttleKey);

  return deps.db.transaction(async (tx) => {
    const session = await insertSession(tx, {
      userId: user.id,
      orgId: membership.org_id,
      expiresAt: new Date(Date.now() + deps.config.refreshTokenTtlSeconds * 1000),
      clientIp: meta.clientIp,
      userAgent: meta.userAgent?.slice(0, 512) ?? null,
    });
    const auth: AuthContext = {
      orgId: membership.org_id,
      userId: user.id,
      role: membership.role,
      permissions: new Set(),
      actor: { type: 'user', id: user.id, label: user.email },
      sessionId: session.id,
      requestId: meta.requestId,
      clientIp: meta.clientIp,
    };
    await recordAudit(tx, auth, { action: 'session.created', resource: ['session', session.id] });
    return issueTokens(deps, tx, session);
  });
}

/**
 * Rotates a refresh token. Presenting one that was already rotated means it was copied:
 * the whole session (every token descended from the login) is revoked.
 */
export async function refresh(deps: Deps, refreshToken: string, meta: { requestId: string; clientIp: string | null }) {
  const hash = hashToken(refreshToken);
  const outcome = await deps.db.transaction(async (tx) => {
    const session = await rotateRefreshToken(tx, hash);
    if (!session) {
      const owner = await findSessionOfRefreshToken(tx, hash);
      if (!owner) return { error: new UnauthorizedError('The refresh token is not valid.', 'invalid_refresh_token') };
      if (await revokeSession(tx, owner.id, 'refresh_token_reused')) {
        await recordAudit(tx, sessionActor(owner, meta), {
          action: 'session.revoked',
          resource: ['session', owner.id],
          details: { reason: 'refresh_token_reused' },
        });
      }
      return {
        revoked: owner.id,
        error: new UnauthorizedError(
          'This refresh token was already used; the session has been revoked. Log in again.',
          'refresh_token_reused',
        ),
      };
    }
    if (session.revoked_at) return { error: new UnauthorizedError('The session was revoked.', 'session_revoked') };
    if (session.expires_at.getTime() <= Date.now())
      return { error: new UnauthorizedError('The session has expired.', 'session_expired') };
    return { tokens: await issueTokens(deps, tx, session) };
  });
  if (outcome.revoked) deps.bus.publish(AUTH_TOPIC, 'session.revoked', { sessionId: outcome.revoked });
  if (outcome.error) throw outcome.error;
  return outcome.tokens;
}

function sessionActor(session: SessionRow, meta: { requestId: string; clientIp: string | null }): AuthContext {
  return {
    orgId: session.org_id,
    userId: session.user_id,
    role: 'viewer',
    permissions: new Set(),
    actor: { type: 'system', id: 'auth', label: 'refresh-reuse detection' },
    requestId: meta.requestId,
    clientIp: meta.clientIp,
  };
}

export async function logout(deps: Deps, auth: AuthContext): Promise<void> {
  const sessionId = auth.sessionId;
  if (!sessionId) throw new NotFoundError('Session');
  await deps.db.transaction(async (tx) => {
    if (await revokeSession(tx, sessionId, 'logout')) {
      await recordAudit(tx, auth, { action: 'session.revoked', resource: ['session', sessionId], details: { reason: 'logout' } });
    }
  });
  deps.bus.publish(AUTH_TOPIC, 'session.revoked', { sessionId });
}

export async function describeSession(deps: Deps, auth: AuthContext) {
  const session = auth.sessionId ? await findSession(deps.db, auth.sessionId) : undefined;
  return {
    valid: true as const,
    kind: auth.jobId
      ? ('job' as const)
      : auth.agentId
        ? ('agent' as const)
        : auth.poolId
          ? ('registration' as const)
          : auth.tokenId
            ? ('api_token' as const)
            : ('session' as const),
    user_id: auth.userId,
    actor: auth.actor.label,
    organization_id: auth.orgId,
    role: auth.role,
    permissions: [...auth.permissions].sort(),
    session: session
      ? {
          id: session.id,
          created_at: session.created_at.toISOString(),
          last_used_at: session.last_used_at.toISOString(),
          expires_at: session.expires_at.toISOString(),
        }
      : null,
    token_id: auth.tokenId ?? null,
  };
}
