// Admin commands work on the database directly (same config as the server), for the first
// user of a PostgreSQL install and for scripted setups. Every change is audited as `system`.
import type { Command } from 'commander';
import pino from 'pino';
import { ROLES, ROLE_PERMISSIONS, systemContext, type Role } from '../platform/auth.js';
import { loadConfig } from '../config.js';
import { findUserByEmail, insertUser, listMembershipsOfUser } from '../features/auth/auth.queries.js';
import { generatePassword, hashPassword } from '../features/auth/passwords.js';
import { createApiToken } from '../features/auth/tokens.service.js';
import { findOrganization } from '../features/orgs/orgs.queries.js';
import { addMember, createOrganization } from '../features/orgs/orgs.service.js';
import { closeDeps, openDeps } from '../server.js';

async function withDeps<T>(fn: (deps: Awaited<ReturnType<typeof openDeps>>) => Promise<T>): Promise<T> {
  const deps = await openDeps(loadConfig(), { log: pino({ level: 'warn' }) });
  try {
    return await fn(deps);
  } finally {
    await closeDeps(deps);
  }
}

function parseRole(value: string): Role {
  if (!(ROLES as readonly string[]).includes(value)) throw new Error(`role must be one of ${ROLES.join(', ')}`);
  return value as Role;
}

export function registerAdminCommands(program: Command): void {
  const admin = program.command('admin').description('Administrative commands (run where the server’s config is)');

  admin
    .command('create-user')
    .description('Create a user (or add an existing one) as a member of an organization, creating the organization if needed')
    .requiredOption('--email <email>', 'the user’s email')
    .option('--name <name>', 'display name')
    .option('--password <password>', 'initial password (12+ characters); generated and printed if absent')
    .option('--org <slug>', 'organization slug', 'default')
    .option('--role <role>', `one of ${ROLES.join(', ')}`, parseRole, 'admin' as Role)
    .action(async (opts: { email: string; name?: string; password?: string; org: string; role: Role }) => {
      const password = opts.password ?? generatePassword();
      if (password.length < 12) throw new Error('--password must be at least 12 characters');
      await withDeps(async (deps) => {
        const ctx = systemContext('00000000-0000-0000-0000-000000000000', 'cli');
        const existingOrg = await findOrganization(deps.db, opts.org);
        if (!existingOrg) {
          const user =
            (await findUserByEmail(deps.db, opts.email)) ??
            (await insertUser(deps.db, {
              email: opts.email,
              name: opts.name ?? opts.email,
              passwordHash: await hashPassword(password),
            }));
          await createOrganization(deps, ctx, { slug: opts.org, name: opts.org, ownerUserId: user.id });
          process.stdout.write(`created organization ${opts.org} with ${opts.email} as owner\n`);
        } else {
          await addMember(deps, systemContext(existingOrg.id, 'cli'), {
            email: opts.email,
            name: opts.name,
            password,
            role: opts.role,
          });
          process.stdout.write(`added ${opts.email} to ${opts.org} as ${opts.role}\n`);
        }
        if (!opts.password) process.stdout.write(`password: ${password}\n`);
      });
    });

  admin
    .command('create-token')
    .description('Create an API token for a user (printed once)')
    .requiredOption('--email <email>', 'the token’s owner')
    .option('--org <slug>', 'organization slug (default: the user’s first)')
    .option('--name <name>', 'token name', 'cli')
    .option('--scopes <scopes>', 'comma-separated scopes (default: everything the user’s role allows)')
    .option('--expires-in-days <days>', 'expiry in days', (v) => Number.parseInt(v, 10))
    .action(async (opts: { email: string; org?: string; name: string; scopes?: string; expiresInDays?: number }) => {
      await withDeps(async (deps) => {
        const user = await findUserByEmail(deps.db, opts.email);
        if (!user) throw new Error(`no user ${opts.email}`);
        const memberships = await listMembershipsOfUser(deps.db, user.id);
        const membership = opts.org ? memberships.find((m) => m.org_slug === opts.org) : memberships[0];
        if (!membership) throw new Error(`${opts.email} is not a member of ${opts.org ?? 'any organization'}`);
        const permissions = ROLE_PERMISSIONS[membership.role];
        const auth = {
          ...systemContext(membership.org_id, 'cli'),
          userId: user.id,
          role: membership.role,
          permissions,
        };
        const scopes = opts.scopes ? opts.scopes.split(',').map((s) => s.trim()) : [...permissions];
        const token = await createApiToken(deps, auth, { name: opts.name, scopes, expires_in_days: opts.expiresInDays ?? null });
        process.stdout.write(`${token.token}\n`);
      });
    });
}
