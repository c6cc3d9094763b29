// A project's environments and their rules. A project that has configured none gets two
// defaults — staging, and production (approval by admins, only versions that passed
// staging) — shown as unsaved on reads and saved the first time something needs them (a
// deployment, a change to either), so reads never write.
import type { AuthContext, Role } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { BadRequestError, ConflictError, NotFoundError } from '../../platform/errors.js';
import { recordAudit } from '../audit/audit.record.js';
import { resolveUsers } from '../approvals/approvals.core.js';
import { getProject } from '../projects/projects.service.js';
import { findPoolIdsByName } from '../queue/jobs.queries.js';
import {
  deleteEnvironment,
  insertEnvironments,
  listEnvironments,
  lockProjectEnvironments,
  updateEnvironment,
  type EnvironmentRow,
  type EnvironmentSpec,
} from './environments.queries.js';
import { presentEnvironment } from './deployments.views.js';

const DEFAULT_POOL = 'default';

export const DEFAULT_ENVIRONMENTS: readonly EnvironmentSpec[] = [
  {
    name: 'staging',
    requires_approval: false,
    approval_roles: [],
    approval_user_ids: [],
    approval_expires_in_seconds: null,
    requires_passed: null,
    pool: DEFAULT_POOL,
    tags: {},
    commands: [],
    timeout_seconds: null,
  },
  {
    name: 'production',
    requires_approval: true,
    approval_roles: ['admin'],
    approval_user_ids: [],
    approval_expires_in_seconds: null,
    requires_passed: 'staging',
    pool: DEFAULT_POOL,
    tags: {},
    commands: [],
    timeout_seconds: null,
  },
];

/** The project's environments, its defaults saved first if it has none (inside a write's transaction). */
export async function savedEnvironments(tx: Queryable, orgId: string, projectId: string): Promise<EnvironmentRow[]> {
  const rows = await listEnvironments(tx, orgId, projectId);
  if (rows.length > 0) return rows;
  await insertEnvironments(tx, orgId, projectId, DEFAULT_ENVIRONMENTS);
  return listEnvironments(tx, orgId, projectId);
}

/** The environment a deployment goes to; a name the project does not have is the caller's mistake. */
export async function environmentFor(tx: Queryable, orgId: string, projectId: string, name: string): Promise<EnvironmentRow> {
  const envs = await savedEnvironments(tx, orgId, projectId);
  const env = envs.find((e) => e.name === name);
  if (!env) {
    throw new BadRequestError(
      `The project has no environment named "${name}"; it has ${envs.map((e) => e.name).join(', ')}.`,
      'unknown_environment',
    );
  }
  return env;
}

/** In the order versions travel: environments that require none first, then those after them. */
function inPromotionOrder<E extends EnvironmentSpec>(envs: readonly E[]): E[] {
  const byName = new Map(envs.map((e) => [e.name, e]));
  const depth = (e: E, seen = new Set<string>()): number => {
    const before = e.requires_passed ? byName.get(e.requires_passed) : undefined;
    if (!before || seen.has(e.name)) return 0;
    return 1 + depth(before, seen.add(e.name));
  };
  return envs
    .map((e, i) => ({ e, i, d: depth(e) }))
    .sort((a, b) => a.d - b.d || a.i - b.i)
    .map((x) => x.e);
}

export async function listProjectEnvironments(deps: Pick<AppDeps, 'db' | 'bus'>, auth: AuthContext, projectId: string) {
  await getProject(deps, auth, projectId);
  const rows = await listEnvironments(deps.db, auth.orgId, projectId);
  return { items: inPromotionOrder<EnvironmentSpec>(rows.length > 0 ? rows : DEFAULT_ENVIRONMENTS).map(presentEnvironment) };
}

export interface EnvironmentBody {
  requires_approval?: boolean;
  approval_roles?: Role[];
  approval_users?: string[];
  approval_expires_in_seconds?: number | null;
  requires_passed?: string | null;
  pool?: string;
  tags?: Record<string, string>;
  commands?: string[];
  timeout_seconds?: number | null;
}

/** A rule chain that comes back to where it started would let no version ever deploy. */
function checkRequiresChain(envs: Map<string, string | null>, start: string): void {
  const seen = new Set<string>([start]);
  for (let at = envs.get(start); at; at = envs.get(at)) {
    if (!envs.has(at))
      throw new BadRequestError(
        `requires_passed names "${at}", which is not an environment of the project.`,
        'unknown_environment',
      );
    if (seen.has(at)) throw new BadRequestError(`requires_passed makes a loop through "${at}".`, 'requires_passed_loop');
    seen.add(at);
  }
}

/** Creates or replaces one environment (absent fields take their defaults). */
export async function putEnvironment(
  deps: Pick<AppDeps, 'db' | 'bus'>,
  auth: AuthContext,
  projectId: string,
  name: string,
  body: EnvironmentBody,
) {
  await getProject(deps, auth, projectId);
  const spec: EnvironmentSpec = {
    name,
    requires_approval: body.requires_approval ?? false,
    approval_roles: body.approval_roles ?? [],
    approval_user_ids: await resolveUsers(deps.db, auth.orgId, body.approval_users ?? []),
    approval_expires_in_seconds: body.approval_expires_in_seconds ?? null,
    requires_passed: body.requires_passed ?? null,
    pool: body.pool ?? DEFAULT_POOL,
    tags: body.tags ?? {},
    commands: body.commands ?? [],
    timeout_seconds: body.timeout_seconds ?? null,
  };
  if (!(await findPoolIdsByName(deps.db, auth.orgId, [spec.pool])).has(spec.pool)) {
    throw new BadRequestError(`There is no pool named "${spec.pool}".`, 'unknown_pool');
  }
  const saved = await deps.db.transaction(async (tx) => {
    await lockProjectEnvironments(tx, projectId);
    const before = (await savedEnvironments(tx, auth.orgId, projectId)).find((e) => e.name === name);
    await insertEnvironments(tx, auth.orgId, projectId, [spec]);
    const row = (await updateEnvironment(tx, auth.orgId, projectId, spec))!;
    const all = await listEnvironments(tx, auth.orgId, projectId);
    checkRequiresChain(new Map(all.map((e) => [e.name, e.requires_passed])), name);
    await recordAudit(tx, auth, {
      action: before ? 'environment.updated' : 'environment.created',
      resource: ['environment', row.id],
      projectId,
      ...(before ? { before: presentEnvironment(before) } : {}),
      after: presentEnvironment(row),
    });
    return row;
  });
  publishOrgEvent(deps.bus, auth.orgId, 'environment.updated', { project_id: projectId, environment: name });
  return presentEnvironment(saved);
}

export async function removeEnvironment(deps: Pick<AppDeps, 'db' | 'bus'>, auth: AuthContext, projectId: string, name: string) {
  await getProject(deps, auth, projectId);
  await deps.db.transaction(async (tx) => {
    await lockProjectEnvironments(tx, projectId);
    const envs = await savedEnvironments(tx, auth.orgId, projectId);
    const env = envs.find((e) => e.name === name);
    if (!env) throw new NotFoundError(`Environment "${name}"`);
    const dependents = envs.filter((e) => e.requires_passed === name).map((e) => e.name);
    if (dependents.length > 0) {
      throw new ConflictError(
        `${dependents.join(', ')} require versions to pass "${name}" first; change them first.`,
        'environment_required',
        {
          environments: dependents,
        },
      );
    }
    await deleteEnvironment(tx, auth.orgId, projectId, name);
    await recordAudit(tx, auth, {
      action: 'environment.deleted',
      resource: ['environment', env.id],
      projectId,
      before: presentEnvironment(env),
    });
  });
  publishOrgEvent(deps.bus, auth.orgId, 'environment.deleted', { project_id: projectId, environment: name });
}
