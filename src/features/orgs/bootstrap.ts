// First start: with no users at all, create an organization and its first admin so a
// newcomer can log in. In embedded mode this always happens (a password is generated and
// printed unless CAIRN_ADMIN_PASSWORD is set) along with a `default` agent pool; with PostgreSQL only when
// CAIRN_ADMIN_EMAIL/PASSWORD are given, since a shared database is set up deliberately.
import { systemContext } from '../../platform/auth.js';
import type { AppDeps } from '../../platform/deps.js';
import { countUsers, insertUser } from '../auth/auth.queries.js';
import { generatePassword, hashPassword } from '../auth/passwords.js';
import { createPool } from '../pools/pools.service.js';
import { createOrganization } from './orgs.service.js';

export interface BootstrapLogin {
  email: string;
  /** Only when generated here (otherwise the operator chose it). */
  password: string | null;
  orgSlug: string;
  /** The `default` pool's registration token, so a first agent can join at once. */
  registrationToken: string;
}

export async function bootstrapFirstAdmin(deps: AppDeps, opts: { embedded: boolean }): Promise<BootstrapLogin | null> {
  const { adminEmail, adminPassword } = deps.config;
  if (!opts.embedded && !(adminEmail && adminPassword)) return null;
  if ((await countUsers(deps.db)) > 0) return null;
  const email = adminEmail ?? 'admin@cairn.local';
  const password = adminPassword ?? generatePassword();
  const user = await insertUser(deps.db, { email, name: 'Administrator', passwordHash: await hashPassword(password) });
  const org = await createOrganization(deps, systemContext('00000000-0000-0000-0000-000000000000', 'bootstrap'), {
    slug: 'default',
    name: 'Default organization',
    ownerUserId: user.id,
  });
  const pool = await createPool(deps, systemContext(org.id, 'bootstrap'), {
    name: 'default',
    description: 'Created at first start; register agents with its token',
  });
  return { email, password: adminPassword ? null : password, orgSlug: org.slug, registrationToken: pool.registration_token };
}
