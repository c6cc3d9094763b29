import type { Queryable } from '../../platform/db/index.js';

export interface ProjectRow {
  id: string;
  org_id: string;
  slug: string;
  name: string;
  description: string;
  repository_url: string | null;
  project_type: string;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'id, org_id, slug, name, description, repository_url, project_type, created_at, updated_at';

export const PROJECT_SORTS = {
  created_at: 'created_at',
  updated_at: 'updated_at',
  name: 'name',
} as const;
export type ProjectSortKey = keyof typeof PROJECT_SORTS;

export interface ProjectListFilter {
  orgId: string;
  projectType?: string;
  /** Prefix-matching tsquery built by the service, e.g. `deploy:* & bot:*`. */
  tsquery?: string;
  sort: ProjectSortKey;
  descending: boolean;
  /** Keyset cursor: the sort value and id of the last row of the previous page. */
  after?: { value: string; id: string };
  limit: number;
}

export async function insertProject(
  db: Queryable,
  p: { orgId: string; slug: string; name: string; description: string; repositoryUrl: string | null; projectType: string },
): Promise<ProjectRow> {
  const { rows } = await db.query<ProjectRow>(
    `INSERT INTO projects (org_id, slug, name, description, repository_url, project_type)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
    [p.orgId, p.slug, p.name, p.description, p.repositoryUrl, p.projectType],
  );
  return rows[0]!;
}

/** Scoped by organization: another organization's project is simply not found. */
export async function findProject(
  db: Queryable,
  orgId: string,
  id: string,
  opts: { forUpdate?: boolean } = {},
): Promise<ProjectRow | undefined> {
  const { rows } = await db.query<ProjectRow>(
    `SELECT ${COLUMNS} FROM projects WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL${opts.forUpdate ? ' FOR UPDATE' : ''}`,
    [orgId, id],
  );
  return rows[0];
}

export async function updateProject(
  db: Queryable,
  orgId: string,
  id: string,
  p: { slug: string; name: string; description: string; repositoryUrl: string | null; projectType: string },
): Promise<ProjectRow | undefined> {
  const { rows } = await db.query<ProjectRow>(
    `UPDATE projects SET slug = $3, name = $4, description = $5, repository_url = $6, project_type = $7, updated_at = now()
      WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING ${COLUMNS}`,
    [orgId, id, p.slug, p.name, p.description, p.repositoryUrl, p.projectType],
  );
  return rows[0];
}

export async function softDeleteProject(db: Queryable, orgId: string, id: string): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE projects SET deleted_at = now(), updated_at = now() WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL',
    [orgId, id],
  );
  return rowCount > 0;
}

export async function listProjects(db: Queryable, f: ProjectListFilter): Promise<ProjectRow[]> {
  // The sort column comes from a fixed map, never from input, so it is safe to splice in.
  const column = PROJECT_SORTS[f.sort];
  const cmp = f.descending ? '<' : '>';
  const dir = f.descending ? 'DESC' : 'ASC';
  const cast = column === 'name' ? 'text' : 'timestamptz';
  const { rows } = await db.query<ProjectRow>(
    `SELECT ${COLUMNS} FROM projects
      WHERE org_id = $1 AND deleted_at IS NULL
        AND ($2::text IS NULL OR project_type = $2)
        AND ($3::text IS NULL OR search @@ to_tsquery('simple', $3))
        AND ($4::text IS NULL OR (${column}, id) ${cmp} ($4::${cast}, $5::uuid))
      ORDER BY ${column} ${dir}, id ${dir}
      LIMIT $6`,
    [f.orgId, f.projectType ?? null, f.tsquery ?? null, f.after?.value ?? null, f.after?.id ?? null, f.limit],
  );
  return rows;
}

export async function lastProjectActivity(db: Queryable, orgId: string, projectId: string): Promise<Date | null> {
  const { rows } = await db.query<{ at: Date | null }>(
    'SELECT max(occurred_at) AS at FROM audit_events WHERE org_id = $1 AND project_id = $2',
    [orgId, projectId],
  );
  return rows[0]?.at ?? null;
}
