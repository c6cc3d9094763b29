import { PERMISSIONS, type AuthContext, type Permission } from '../../platform/auth.js';
import type { AppDeps } from '../../platform/deps.js';
import { BadRequestError, NotFoundError } from '../../platform/errors.js';
import { recordAudit } from '../audit/audit.record.js';
import { AUTH_TOPIC } from './authenticate.js';
import { findApiToken, insertApiToken, listApiTokensOfUser, revokeApiToken, type ApiTokenRow } from './auth.queries.js';
import { API_TOKEN_PREFIX, newOpaqueToken } from './tokens.js';

type Deps = Pick<AppDeps, 'db' | 'bus'>;

export function presentToken(row: ApiTokenRow) {
  return {
    id: row.id,
    name: row.name,
    prefix: row.token_prefix,
    scopes: row.scopes,
    created_at: row.created_at.toISOString(),
    expires_at: row.expires_at?.toISOString() ?? null,
    last_used_at: row.last_used_at?.toISOString() ?? null,
    revoked_at: row.revoked_at?.toISOString() ?? null,
  };
}

export interface CreateTokenInput {
  name: string;
  scopes: string[];
  expires_in_days?: number | null;
}

/** The secret is returned once, here; only its hash is stored. */
export async function createApiToken(deps: Deps, auth: AuthContext, input: CreateTokenInput) {
  if (!auth.userId) throw new BadRequestError('API tokens belong to a user.');
  const unknown = input.scopes.filter((s) => !(PERMISSIONS as readonly string[]).includes(s));
  if (unknown.length) throw new BadRequestError(`Unknown scopes: ${unknown.join(', ')}.`, 'unknown_scope');
  const beyond = input.scopes.filter((s) => !auth.permissions.has(s as Permission));
  if (beyond.length) {
    throw new BadRequestError(`A token cannot have scopes you lack: ${beyond.join(', ')}.`, 'scope_not_allowed');
  }
  const { token, hash } = newOpaqueToken(API_TOKEN_PREFIX);
  const expiresAt = input.expires_in_days ? new Date(Date.now() + input.expires_in_days * 86_400_000) : null;
  const userId = auth.userId;
  const row = await deps.db.transaction(async (tx) => {
    const created = await insertApiToken(tx, {
      orgId: auth.orgId,
      userId,
      name: input.name,
      hash,
      prefix: token.slice(0, API_TOKEN_PREFIX.length + 6),
      scopes: [...new Set(input.scopes)].sort(),
      expiresAt,
    });
    await recordAudit(tx, auth, {
      action: 'api_token.created',
      resource: ['api_token', created.id],
      after: presentToken(created),
    });
    return created;
  });
  return { ...presentToken(row), token };
}

export async function listApiTokens(deps: Deps, auth: AuthContext) {
  if (!auth.userId) return [];
  return (await listApiTokensOfUser(deps.db, auth.orgId, auth.userId)).map(presentToken);
}

export async function revokeToken(deps: Deps, auth: AuthContext, tokenId: string): Promise<void> {
  const token = await findApiToken(deps.db, auth.orgId, tokenId);
  // Members manage their own tokens; admins may revoke any token of the organization.
  if (!token || (token.user_id !== auth.userId && !auth.permissions.has('members:write'))) throw new NotFoundError('API token');
  await deps.db.transaction(async (tx) => {
    if (await revokeApiToken(tx, auth.orgId, tokenId)) {
      await recordAudit(tx, auth, { action: 'api_token.revoked', resource: ['api_token', tokenId], before: presentToken(token) });
    }
  });
  deps.bus.publish(AUTH_TOPIC, 'token.revoked', { tokenId });
}
