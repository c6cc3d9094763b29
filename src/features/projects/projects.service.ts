import type { AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { AppDeps } from '../../platform/deps.js';
import { BadRequestError, ConflictError, NotFoundError, isUniqueViolation } from '../../platform/errors.js';
import { decodeCursor, encodeCursor } from '../../platform/http/schemas.js';
import { countPendingApprovals } from '../approvals/approvals.queries.js';
import { recordAudit } from '../audit/audit.record.js';
import { projectActivity } from '../runs/runs.queries.js';
import {
  findProject,
  insertProject,
  lastProjectActivity,
  listProjects,
  softDeleteProject,
  updateProject,
  type ProjectRow,
  type ProjectSortKey,
} from './projects.queries.js';

type Deps = Pick<AppDeps, 'db' | 'bus'>;

/** Used later by assurance-case templates to pick what evidence a project needs. */
export const PROJECT_TYPES = ['service', 'library', 'application', 'infrastructure', 'ml_model', 'agent', 'other'] as const;

export interface ProjectInput {
  slug?: string;
  name: string;
  description?: string;
  repository_url?: string | null;
  project_type?: (typeof PROJECT_TYPES)[number];
}

export function presentProject(p: ProjectRow) {
  return {
    id: p.id,
    slug: p.slug,
    name: p.name,
    description: p.description,
    repository_url: p.repository_url,
    project_type: p.project_type,
    created_at: p.created_at.toISOString(),
    updated_at: p.updated_at.toISOString(),
  };
}
export type Project = ReturnType<typeof presentProject>;

export function slugify(name: string): string {
  const slug = name
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  if (!slug) throw new BadRequestError('The name has no letters or digits to make a slug from; give a slug.', 'slug_required');
  return slug;
}

function slugConflict(error: unknown, slug: string): never {
  if (isUniqueViolation(error, 'projects_org_slug_key')) {
    throw new ConflictError(`A project with slug "${slug}" already exists.`, 'slug_taken', { slug });
  }
  throw error;
}

function publish(deps: Deps, type: string, project: Project, orgId: string) {
  publishOrgEvent(deps.bus, orgId, type, { project_id: project.id, project });
}

export async function createProject(deps: Deps, auth: AuthContext, input: ProjectInput): Promise<Project> {
  const slug = input.slug ?? slugify(input.name);
  let project: Project;
  try {
    project = await deps.db.transaction(async (tx) => {
      const row = presentProject(
        await insertProject(tx, {
          orgId: auth.orgId,
          slug,
          name: input.name,
          description: input.description ?? '',
          repositoryUrl: input.repository_url ?? null,
          projectType: input.project_type ?? 'other',
        }),
      );
      await recordAudit(tx, auth, { action: 'project.created', resource: ['project', row.id], projectId: row.id, after: row });
      return row;
    });
  } catch (error) {
    slugConflict(error, slug);
  }
  publish(deps, 'project.created', project, auth.orgId);
  return project;
}

export async function getProject(deps: Deps, auth: AuthContext, id: string): Promise<Project> {
  const row = await findProject(deps.db, auth.orgId, id);
  if (!row) throw new NotFoundError('Project');
  return presentProject(row);
}

export async function patchProject(deps: Deps, auth: AuthContext, id: string, patch: Partial<ProjectInput>): Promise<Project> {
  let project: Project;
  try {
    project = await deps.db.transaction(async (tx) => {
      const before = await findProject(tx, auth.orgId, id, { forUpdate: true });
      if (!before) throw new NotFoundError('Project');
      const row = await updateProject(tx, auth.orgId, id, {
        slug: patch.slug ?? before.slug,
        name: patch.name ?? before.name,
        description: patch.description ?? before.description,
        repositoryUrl: patch.repository_url !== undefined ? patch.repository_url : before.repository_url,
        projectType: patch.project_type ?? before.project_type,
      });
      const after = presentProject(row!);
      await recordAudit(tx, auth, {
        action: 'project.updated',
        resource: ['project', id],
        projectId: id,
        before: presentProject(before),
        after,
      });
      return after;
    });
  } catch (error) {
    slugConflict(error, patch.slug ?? '');
  }
  publish(deps, 'project.updated', project, auth.orgId);
  return project;
}

/**
 * Soft delete: the project disappears from every read, its slug is free again, and what
 * refers to it (runs, evidence, the audit trail and ledger) stays intact.
 */
export async function deleteProject(deps: Deps, auth: AuthContext, id: string): Promise<void> {
  const project = await deps.db.transaction(async (tx) => {
    const before = await findProject(tx, auth.orgId, id, { forUpdate: true });
    if (!before || !(await softDeleteProject(tx, auth.orgId, id))) throw new NotFoundError('Project');
    await recordAudit(tx, auth, {
      action: 'project.deleted',
      resource: ['project', id],
      projectId: id,
      before: presentProject(before),
    });
    return presentProject(before);
  });
  publish(deps, 'project.deleted', project, auth.orgId);
}

export interface ProjectListQuery {
  limit?: number;
  cursor?: string;
  q?: string;
  project_type?: string;
  sort?: string;
}

/** Each word matches as a prefix ("depl bot" finds "Deploy bot"); only letters and digits count. */
export function toPrefixTsquery(q: string): string | undefined {
  const words = q.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  return words.length
    ? words
        .slice(0, 16)
        .map((w) => `${w}:*`)
        .join(' & ')
    : undefined;
}

export async function listProjectsPage(deps: Deps, auth: AuthContext, query: ProjectListQuery) {
  const limit = query.limit ?? 50;
  const sortParam = query.sort ?? '-created_at';
  const descending = sortParam.startsWith('-');
  const sort = sortParam.replace(/^-/, '') as ProjectSortKey;
  const cursor = query.cursor ? decodeCursor(query.cursor, 2) : undefined;
  const rows = await listProjects(deps.db, {
    orgId: auth.orgId,
    projectType: query.project_type,
    tsquery: query.q ? (toPrefixTsquery(query.q) ?? '') : undefined,
    sort,
    descending,
    after: cursor ? { value: String(cursor[0]), id: String(cursor[1]) } : undefined,
    limit: limit + 1,
  });
  const page = rows.slice(0, limit).map(presentProject);
  const last = page.at(-1);
  return {
    items: page,
    next_cursor: rows.length > limit && last ? encodeCursor([last[sort], last.id]) : null,
  };
}

export async function projectStatus(deps: Deps, auth: AuthContext, id: string) {
  const project = await getProject(deps, auth, id);
  const [last, activity, openApprovals] = await Promise.all([
    lastProjectActivity(deps.db, auth.orgId, project.id),
    projectActivity(deps.db, auth.orgId, project.id),
    countPendingApprovals(deps.db, auth.orgId, project.id),
  ]);
  return {
    project,
    counts: { runs: activity.runs, active_runs: activity.active_runs, jobs: activity.jobs, open_approvals: openApprovals },
    // Complete when every step of every run has finished (a project with no runs has nothing left).
    complete: activity.active_runs === 0,
    last_activity_at: last?.toISOString() ?? null,
  };
}
