// Turns an Authorization header into an AuthContext. Every request pays for this, so the
// database answer (is the session alive, what is the member's role now) is kept per
// replica for a few seconds; revocations and role changes publish on the bus and drop the
// cached entry on every replica at once, so logout and revoke take effect immediately.
import type { Bus } from '../../platform/bus.js';
import { ROLE_PERMISSIONS, type AuthContext, type Permission, type Role } from '../../platform/auth.js';
import type { Queryable } from '../../platform/db/index.js';
import { UnauthorizedError } from '../../platform/errors.js';
import { findAgentByTokenHash } from '../agents/agents.queries.js';
import { findPoolByRegistrationHash } from '../pools/pools.queries.js';
import { findLiveJobLease } from '../queue/jobs.queries.js';
import { findLiveApiToken, findLiveSession, touchApiToken } from './auth.queries.js';
import {
  AGENT_TOKEN_PREFIX,
  API_TOKEN_PREFIX,
  JOB_TOKEN_PREFIX,
  REGISTRATION_TOKEN_PREFIX,
  hashToken,
  jobTokenMatches,
  parseJobToken,
  verifyAccessToken,
  type AccessTokenResult,
} from './tokens.js';

export const AUTH_TOPIC = 'auth';
const CACHE_TTL_MS = 10_000;
const CACHE_MAX = 50_000;

interface Principal {
  orgId: string;
  userId: string | null;
  role: Role | null;
  permissions: ReadonlySet<Permission>;
  actor: AuthContext['actor'];
  sessionId?: string;
  tokenId?: string;
  agentId?: string;
  poolId?: string;
  jobId?: string;
  expiresAt: number | null;
}

const JOB_SELF: ReadonlySet<Permission> = new Set<Permission>(['job:self']);
const AGENT_WORK: ReadonlySet<Permission> = new Set<Permission>(['agent:work']);
const AGENT_REGISTER: ReadonlySet<Permission> = new Set<Permission>(['agent:register']);

export interface InvalidationMatch {
  sessionId?: string;
  tokenId?: string;
  userId?: string;
  agentId?: string;
  poolId?: string;
}

type Cached = { principal: Principal | null; reason: string; fetchedAt: number };

export interface Authenticator {
  authenticate(header: string, meta: { requestId: string; clientIp: string | null }): Promise<AuthContext>;
  /** Drops cached answers; called from bus events on every replica. */
  invalidate(match: InvalidationMatch): void;
  close(): void;
}

export function createAuthenticator(deps: { db: Queryable; bus: Bus; jwtSecret: Uint8Array }): Authenticator {
  const cache = new Map<string, Cached>();
  const remember = (key: string, entry: Cached) => {
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
    cache.set(key, entry);
  };

  // An HMAC check gives the same answer for the same token until it expires, so a
  // replica verifies each access token once rather than on every request.
  const verifiedTokens = new Map<string, { result: AccessTokenResult; expiresAt: number }>();
  async function verifyCached(token: string): Promise<AccessTokenResult> {
    const hit = verifiedTokens.get(token);
    if (hit && hit.expiresAt > Date.now()) return hit.result;
    const result = await verifyAccessToken(deps.jwtSecret, token);
    if (result.ok) {
      if (verifiedTokens.size >= CACHE_MAX) verifiedTokens.delete(verifiedTokens.keys().next().value!);
      verifiedTokens.set(token, { result, expiresAt: result.expiresAt * 1000 });
    }
    return result;
  }

  async function loadSession(sessionId: string): Promise<Cached> {
    const row = await findLiveSession(deps.db, sessionId);
    const fetchedAt = Date.now();
    if (!row) return { principal: null, reason: 'session not found', fetchedAt };
    if (row.revoked_at) return { principal: null, reason: 'session revoked', fetchedAt };
    if (row.disabled_at) return { principal: null, reason: 'user disabled', fetchedAt };
    if (!row.role) return { principal: null, reason: 'no longer a member of this organization', fetchedAt };
    return {
      fetchedAt,
      reason: '',
      principal: {
        orgId: row.org_id,
        userId: row.user_id,
        role: row.role,
        permissions: ROLE_PERMISSIONS[row.role],
        actor: { type: 'user', id: row.user_id, label: row.email },
        sessionId: row.session_id,
        expiresAt: row.expires_at.getTime(),
      },
    };
  }

  async function loadApiToken(token: string): Promise<Cached> {
    const row = await findLiveApiToken(deps.db, hashToken(token));
    const fetchedAt = Date.now();
    if (!row) return { principal: null, reason: 'unknown API token', fetchedAt };
    if (row.revoked_at) return { principal: null, reason: 'API token revoked', fetchedAt };
    if (row.disabled_at) return { principal: null, reason: 'user disabled', fetchedAt };
    if (!row.role) return { principal: null, reason: 'token owner is no longer a member', fetchedAt };
    // A token never exceeds what its owner may do today, whatever scopes it was given.
    const rolePermissions = ROLE_PERMISSIONS[row.role];
    const permissions = new Set(row.scopes.filter((s): s is Permission => rolePermissions.has(s as Permission)));
    // Recorded once per cache refresh (at most every few seconds per replica), not per request.
    await touchApiToken(deps.db, row.id);
    return {
      fetchedAt,
      reason: '',
      principal: {
        orgId: row.org_id,
        userId: row.user_id,
        role: row.role,
        permissions,
        actor: { type: 'api_token', id: row.id, label: row.name },
        tokenId: row.id,
        expiresAt: row.expires_at?.getTime() ?? null,
      },
    };
  }

  async function loadAgent(token: string): Promise<Cached> {
    const row = await findAgentByTokenHash(deps.db, hashToken(token));
    const fetchedAt = Date.now();
    if (!row) return { principal: null, reason: 'unknown agent token', fetchedAt };
    if (row.status === 'stopped') return { principal: null, reason: 'the agent was deregistered', fetchedAt };
    return {
      fetchedAt,
      reason: '',
      principal: {
        orgId: row.org_id,
        userId: null,
        role: null,
        permissions: AGENT_WORK,
        actor: { type: 'agent', id: row.id, label: row.name },
        agentId: row.id,
        poolId: row.pool_id,
        expiresAt: null,
      },
    };
  }

  async function loadRegistration(token: string): Promise<Cached> {
    const row = await findPoolByRegistrationHash(deps.db, hashToken(token));
    const fetchedAt = Date.now();
    if (!row) return { principal: null, reason: 'unknown or rotated registration token', fetchedAt };
    return {
      fetchedAt,
      reason: '',
      principal: {
        orgId: row.org_id,
        userId: null,
        role: null,
        permissions: AGENT_REGISTER,
        actor: { type: 'system', id: `pool:${row.name}`, label: `registration token of pool ${row.name}` },
        poolId: row.pool_id,
        expiresAt: null,
      },
    };
  }

  /** Never cached: a job token must stop working the moment its lease changes. */
  async function resolveJobToken(token: string): Promise<Principal> {
    const parsed = parseJobToken(token);
    const lease = parsed ? await findLiveJobLease(deps.db, parsed.jobId) : undefined;
    if (!parsed || !lease?.lease_token || !jobTokenMatches(deps.jwtSecret, parsed.jobId, lease.lease_token, parsed.mac)) {
      throw new UnauthorizedError('The job token is not valid (the job ended or its lease moved on).', 'invalid_credentials');
    }
    return {
      orgId: lease.org_id,
      userId: null,
      role: null,
      permissions: JOB_SELF,
      actor: { type: 'agent', id: lease.agent_id ?? parsed.jobId, label: `job ${parsed.jobId}` },
      jobId: parsed.jobId,
      poolId: lease.pool_id,
      expiresAt: null,
    };
  }

  async function resolve(key: string, load: () => Promise<Cached>): Promise<Principal> {
    let entry = cache.get(key);
    if (!entry || Date.now() - entry.fetchedAt > CACHE_TTL_MS) {
      entry = await load();
      remember(key, entry);
    }
    const { principal } = entry;
    if (!principal) throw new UnauthorizedError(`The credentials are not valid: ${entry.reason}.`, 'invalid_credentials');
    if (principal.expiresAt !== null && principal.expiresAt <= Date.now()) {
      throw new UnauthorizedError('The credentials have expired.', 'credentials_expired');
    }
    return principal;
  }

  const unsubscribe = deps.bus.subscribe(AUTH_TOPIC, (event) => invalidate(event.data as InvalidationMatch));

  function invalidate(match: InvalidationMatch) {
    for (const [key, entry] of cache) {
      const p = entry.principal;
      if (
        (match.sessionId && p?.sessionId === match.sessionId) ||
        (match.tokenId && p?.tokenId === match.tokenId) ||
        (match.userId && p?.userId === match.userId) ||
        (match.agentId && p?.agentId === match.agentId) ||
        // A rotated registration token must stop working at once, so a pool match drops
        // cached registration principals (agents of the pool keep their own tokens).
        (match.poolId && p?.poolId === match.poolId && !p.agentId)
      ) {
        cache.delete(key);
      }
    }
  }

  return {
    async authenticate(header, meta) {
      const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(header.trim());
      if (!match) throw new UnauthorizedError('Use "Authorization: Bearer <token>".', 'invalid_authorization_header');
      const token = match[1]!;
      let principal: Principal;
      if (token.startsWith(API_TOKEN_PREFIX)) {
        principal = await resolve(`t:${token}`, () => loadApiToken(token));
      } else if (token.startsWith(AGENT_TOKEN_PREFIX)) {
        principal = await resolve(`a:${token}`, () => loadAgent(token));
      } else if (token.startsWith(REGISTRATION_TOKEN_PREFIX)) {
        principal = await resolve(`r:${token}`, () => loadRegistration(token));
      } else if (token.startsWith(JOB_TOKEN_PREFIX)) {
        principal = await resolveJobToken(token);
      } else {
        const verified = await verifyCached(token);
        if (!verified.ok) {
          throw verified.reason === 'expired'
            ? new UnauthorizedError('The access token has expired; refresh it.', 'token_expired')
            : new UnauthorizedError('The access token is not valid.', 'invalid_token');
        }
        const { sid, org, sub } = verified.claims;
        principal = await resolve(`s:${sid}`, () => loadSession(sid));
        if (principal.orgId !== org || principal.userId !== sub) {
          throw new UnauthorizedError('The access token is not valid.', 'invalid_token');
        }
      }
      return {
        orgId: principal.orgId,
        userId: principal.userId,
        role: principal.role,
        permissions: principal.permissions,
        actor: principal.actor,
        ...(principal.sessionId ? { sessionId: principal.sessionId } : {}),
        ...(principal.tokenId ? { tokenId: principal.tokenId } : {}),
        ...(principal.agentId ? { agentId: principal.agentId } : {}),
        ...(principal.poolId ? { poolId: principal.poolId } : {}),
        ...(principal.jobId ? { jobId: principal.jobId } : {}),
        requestId: meta.requestId,
        clientIp: meta.clientIp,
      };
    },
    invalidate,
    close: unsubscribe,
  };
}
