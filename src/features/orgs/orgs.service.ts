// Organizations and their members. Users are created by an organization's admins (there
// is no self-signup and no email delivery to depend on): an admin adds a member with an
// initial password and hands it over; an existing user (same email) is simply added.
import type { AuthContext, Role } from '../../platform/auth.js';
import type { AppDeps } from '../../platform/deps.js';
import { BadRequestError, ConflictError, ForbiddenError, NotFoundError, isUniqueViolation } from '../../platform/errors.js';
import { decodeCursor, encodeCursor } from '../../platform/http/schemas.js';
import { recordAudit } from '../audit/audit.record.js';
import { AUTH_TOPIC } from '../auth/authenticate.js';
import { findUserByEmail, insertUser } from '../auth/auth.queries.js';
import { hashPassword } from '../auth/passwords.js';
import {
  countOwnersForUpdate,
  deleteMembership,
  findMember,
  findOrganization,
  insertOrganization,
  listMembers,
  upsertMembership,
  type MemberRow,
  type OrgRow,
} from './orgs.queries.js';

type Deps = Pick<AppDeps, 'db' | 'bus'>;

export const presentOrg = (o: OrgRow) => ({ id: o.id, slug: o.slug, name: o.name, created_at: o.created_at.toISOString() });
export const presentMember = (m: MemberRow) => ({
  user_id: m.user_id,
  email: m.email,
  name: m.name,
  role: m.role,
  joined_at: m.created_at.toISOString(),
});

export async function getOrganization(deps: Deps, auth: AuthContext) {
  const org = await findOrganization(deps.db, auth.orgId);
  if (!org) throw new NotFoundError('Organization');
  return presentOrg(org);
}

/** Creates an organization with `owner` as its first owner (used by the API, bootstrap and CLI). */
export async function createOrganization(
  deps: Deps,
  auth: Pick<AuthContext, 'actor' | 'requestId' | 'clientIp'>,
  input: { slug: string; name: string; ownerUserId: string },
) {
  try {
    return await deps.db.transaction(async (tx) => {
      const org = await insertOrganization(tx, input);
      await upsertMembership(tx, org.id, input.ownerUserId, 'owner');
      const ctx = { ...auth, orgId: org.id, userId: input.ownerUserId, role: 'owner' as const, permissions: new Set<never>() };
      await recordAudit(tx, ctx, { action: 'organization.created', resource: ['organization', org.id], after: presentOrg(org) });
      return presentOrg(org);
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new ConflictError(`An organization with slug "${input.slug}" exists.`, 'slug_taken');
    throw error;
  }
}

export async function listOrgMembers(deps: Deps, auth: AuthContext, query: { limit?: number; cursor?: string }) {
  const limit = query.limit ?? 50;
  const after = query.cursor ? decodeCursor(query.cursor, 2) : undefined;
  const rows = await listMembers(
    deps.db,
    auth.orgId,
    limit + 1,
    after ? { createdAt: String(after[0]), userId: String(after[1]) } : undefined,
  );
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map(presentMember),
    next_cursor: rows.length > limit && last ? encodeCursor([last.created_at.toISOString(), last.user_id]) : null,
  };
}

function assertMayGrant(auth: AuthContext, role: Role) {
  // Only owners make owners; admins manage everyone below them.
  if (role === 'owner' && auth.role !== 'owner') throw new ForbiddenError('Only an owner can grant the owner role.');
}

export async function addMember(
  deps: Deps,
  auth: AuthContext,
  input: { email: string; name?: string; password?: string; role: Role },
) {
  assertMayGrant(auth, input.role);
  const existing = await findUserByEmail(deps.db, input.email);
  if (!existing && !input.password) {
    throw new BadRequestError('A new user needs an initial password (12+ characters).', 'password_required');
  }
  const passwordHash = existing ? null : await hashPassword(input.password!);
  try {
    const member = await deps.db.transaction(async (tx) => {
      const user =
        existing ?? (await insertUser(tx, { email: input.email, name: input.name ?? input.email, passwordHash: passwordHash! }));
      if (await findMember(tx, auth.orgId, user.id))
        throw new ConflictError(`${input.email} is already a member.`, 'already_member');
      await upsertMembership(tx, auth.orgId, user.id, input.role);
      const created = (await findMember(tx, auth.orgId, user.id))!;
      await recordAudit(tx, auth, {
        action: 'member.added',
        resource: ['user', user.id],
        after: presentMember(created),
        details: { user_created: !existing },
      });
      return created;
    });
    return presentMember(member);
  } catch (error) {
    if (isUniqueViolation(error)) throw new ConflictError(`${input.email} was added concurrently.`, 'already_member');
    throw error;
  }
}

export async function changeMemberRole(deps: Deps, auth: AuthContext, userId: string, role: Role) {
  assertMayGrant(auth, role);
  const member = await deps.db.transaction(async (tx) => {
    const before = await findMember(tx, auth.orgId, userId);
    if (!before) throw new NotFoundError('Member');
    if (before.role === 'owner' && auth.role !== 'owner') throw new ForbiddenError('Only an owner can change an owner.');
    if (before.role === 'owner' && role !== 'owner' && (await countOwnersForUpdate(tx, auth.orgId)) <= 1) {
      throw new ConflictError('An organization keeps at least one owner.', 'last_owner');
    }
    await upsertMembership(tx, auth.orgId, userId, role);
    const after = (await findMember(tx, auth.orgId, userId))!;
    await recordAudit(tx, auth, {
      action: 'member.role_changed',
      resource: ['user', userId],
      before: presentMember(before),
      after: presentMember(after),
    });
    return after;
  });
  deps.bus.publish(AUTH_TOPIC, 'user.changed', { userId });
  return presentMember(member);
}

export async function removeMember(deps: Deps, auth: AuthContext, userId: string) {
  await deps.db.transaction(async (tx) => {
    const before = await findMember(tx, auth.orgId, userId);
    if (!before) throw new NotFoundError('Member');
    if (before.role === 'owner') {
      if (auth.role !== 'owner') throw new ForbiddenError('Only an owner can remove an owner.');
      if ((await countOwnersForUpdate(tx, auth.orgId)) <= 1)
        throw new ConflictError('An organization keeps at least one owner.', 'last_owner');
    }
    await deleteMembership(tx, auth.orgId, userId);
    await recordAudit(tx, auth, { action: 'member.removed', resource: ['user', userId], before: presentMember(before) });
  });
  deps.bus.publish(AUTH_TOPIC, 'user.changed', { userId });
}
