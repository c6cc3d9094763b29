import type { Role } from '../../platform/auth.js';
import type { Queryable } from '../../platform/db/index.js';

export interface OrgRow {
  id: string;
  slug: string;
  name: string;
  created_at: Date;
}

export interface MemberRow {
  user_id: string;
  email: string;
  name: string;
  role: Role;
  created_at: Date;
}

export async function insertOrganization(db: Queryable, o: { slug: string; name: string }): Promise<OrgRow> {
  const { rows } = await db.query<OrgRow>('INSERT INTO organizations (slug, name) VALUES ($1, $2) RETURNING *', [o.slug, o.name]);
  return rows[0]!;
}

export async function findOrganization(db: Queryable, idOrSlug: string): Promise<OrgRow | undefined> {
  const { rows } = await db.query<OrgRow>('SELECT * FROM organizations WHERE id::text = $1 OR slug = $1', [idOrSlug]);
  return rows[0];
}

export async function upsertMembership(db: Queryable, orgId: string, userId: string, role: Role): Promise<void> {
  await db.query(
    `INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)
     ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role`,
    [orgId, userId, role],
  );
}

export async function findMember(db: Queryable, orgId: string, userId: string): Promise<MemberRow | undefined> {
  const { rows } = await db.query<MemberRow>(
    `SELECT u.id AS user_id, u.email, u.name, m.role, m.created_at
       FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND m.user_id = $2`,
    [orgId, userId],
  );
  return rows[0];
}

export async function listMembers(
  db: Queryable,
  orgId: string,
  limit: number,
  after?: { createdAt: string; userId: string },
): Promise<MemberRow[]> {
  const { rows } = await db.query<MemberRow>(
    `SELECT u.id AS user_id, u.email, u.name, m.role, m.created_at
       FROM memberships m JOIN users u ON u.id = m.user_id
      WHERE m.org_id = $1 AND ($2::timestamptz IS NULL OR (m.created_at, m.user_id) > ($2::timestamptz, $3::uuid))
      ORDER BY m.created_at, m.user_id LIMIT $4`,
    [orgId, after?.createdAt ?? null, after?.userId ?? null, limit],
  );
  return rows;
}

export async function deleteMembership(db: Queryable, orgId: string, userId: string): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM memberships WHERE org_id = $1 AND user_id = $2', [orgId, userId]);
  return rowCount > 0;
}

/** Locks the organization's owner rows so two demotions cannot leave it without an owner. */
export async function countOwnersForUpdate(db: Queryable, orgId: string): Promise<number> {
  const { rows } = await db.query<{ user_id: string }>(
    "SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner' FOR UPDATE",
    [orgId],
  );
  return rows.length;
}
