// Users, organizations and credentials for tests, made through the real services so the
// rows are exactly what the API would make.
import { randomBytes } from 'node:crypto';
import { systemContext, type Permission, type Role } from '../../src/platform/auth.js';
import { insertUser } from '../../src/features/auth/auth.queries.js';
import { hashPassword } from '../../src/features/auth/passwords.js';
import { addMember, createOrganization } from '../../src/features/orgs/orgs.service.js';
import type { TestApp } from './app.js';

export interface TestUser {
  orgId: string;
  orgSlug: string;
  userId: string;
  email: string;
  password: string;
  role: Role;
  accessToken: string;
  refreshToken: string;
  headers: { authorization: string };
}

// Hashing with production scrypt costs ~50 ms per user; tests share one known password.
const PASSWORD = 'correct-horse-battery-staple';
let passwordHash: Promise<string> | undefined;
const sharedHash = () => (passwordHash ??= hashPassword(PASSWORD));

export async function login(t: TestApp, email: string, password = PASSWORD, organization?: string) {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password, organization } });
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
  return res.json<{ access_token: string; refresh_token: string; session_id: string }>();
}

/** A new organization with one user of `role`, logged in. */
export async function createOrgAndLogin(t: TestApp, opts: { role?: Role } = {}): Promise<TestUser> {
  const suffix = randomBytes(4).toString('hex');
  const ownerEmail = `owner-${suffix}@example.test`;
  const owner = await insertUser(t.deps.db, { email: ownerEmail, name: 'Owner', passwordHash: await sharedHash() });
  const org = await createOrganization(t.deps, systemContext(owner.id, 'test'), {
    slug: `org-${suffix}`,
    name: `Org ${suffix}`,
    ownerUserId: owner.id,
  });
  const role = opts.role ?? 'owner';
  let email = ownerEmail;
  let userId = owner.id;
  if (role !== 'owner') {
    email = `${role}-${suffix}@example.test`;
    const member = await addMember(t.deps, systemContext(org.id, 'test'), { email, password: PASSWORD, role });
    userId = member.user_id;
  }
  const tokens = await login(t, email, PASSWORD, org.slug);
  return {
    orgId: org.id,
    orgSlug: org.slug,
    userId,
    email,
    password: PASSWORD,
    role,
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    headers: { authorization: `Bearer ${tokens.access_token}` },
  };
}

/** Another user in the same organization as `base`. */
export async function addUser(t: TestApp, base: TestUser, role: Role): Promise<TestUser> {
  const email = `${role}-${randomBytes(4).toString('hex')}@example.test`;
  const member = await addMember(t.deps, systemContext(base.orgId, 'test'), { email, password: PASSWORD, role });
  const tokens = await login(t, email, PASSWORD, base.orgSlug);
  return {
    ...base,
    userId: member.user_id,
    email,
    role,
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    headers: { authorization: `Bearer ${tokens.access_token}` },
  };
}

export async function createApiTokenFor(t: TestApp, user: TestUser, scopes: Permission[], expiresInDays?: number) {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/tokens',
    headers: user.headers,
    payload: { name: 'test', scopes, ...(expiresInDays ? { expires_in_days: expiresInDays } : {}) },
  });
  if (res.statusCode !== 201) throw new Error(`token creation failed: ${res.statusCode} ${res.body}`);
  const body = res.json<{ id: string; token: string }>();
  return { id: body.id, token: body.token, headers: { authorization: `Bearer ${body.token}` } };
}
