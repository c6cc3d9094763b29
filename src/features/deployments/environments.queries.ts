// Every SQL statement of environments (a project's deployment targets and their rules).
import type { Role } from '../../platform/auth.js';
import type { Queryable } from '../../platform/db/index.js';

export interface EnvironmentRow {
  id: string;
  org_id: string;
  project_id: string;
  name: string;
  requires_approval: boolean;
  approval_roles: Role[];
  approval_user_ids: string[];
  approval_expires_in_seconds: number | null;
  requires_passed: string | null;
  pool: string;
  tags: Record<string, string>;
  commands: string[];
  timeout_seconds: number | null;
  created_at: Date;
  updated_at: Date;
}

export type EnvironmentSpec = Omit<EnvironmentRow, 'id' | 'org_id' | 'project_id' | 'created_at' | 'updated_at'>;

export async function listEnvironments(db: Queryable, orgId: string, projectId: string): Promise<EnvironmentRow[]> {
  const { rows } = await db.query<EnvironmentRow>(
    'SELECT * FROM environments WHERE org_id = $1 AND project_id = $2 ORDER BY created_at, name LIMIT 200',
    [orgId, projectId],
  );
  return rows;
}

/** Creates the environments a project lacks (defaults, or one a person is saving); existing ones stay as they are. */
export async function insertEnvironments(
  tx: Queryable,
  orgId: string,
  projectId: string,
  envs: readonly (EnvironmentSpec & { name: string })[],
): Promise<void> {
  await tx.query(
    `INSERT INTO environments (org_id, project_id, name, requires_approval, approval_roles, approval_user_ids,
                               approval_expires_in_seconds, requires_passed, pool, tags, commands, timeout_seconds)
     SELECT $1, $2, e.name, e.requires_approval, e.approval_roles, e.approval_user_ids, e.approval_expires_in_seconds,
            e.requires_passed, e.pool, e.tags, e.commands, e.timeout_seconds
       FROM jsonb_to_recordset($3::jsonb) AS e(name text, requires_approval boolean, approval_roles text[],
            approval_user_ids uuid[], approval_expires_in_seconds int, requires_passed text, pool text, tags jsonb,
            commands jsonb, timeout_seconds int)
     ON CONFLICT (project_id, name) DO NOTHING`,
    [orgId, projectId, JSON.stringify(envs)],
  );
}

export async function updateEnvironment(
  tx: Queryable,
  orgId: string,
  projectId: string,
  e: EnvironmentSpec,
): Promise<EnvironmentRow | undefined> {
  const { rows } = await tx.query<EnvironmentRow>(
    `UPDATE environments SET requires_approval = $4, approval_roles = $5, approval_user_ids = $6,
            approval_expires_in_seconds = $7, requires_passed = $8, pool = $9, tags = $10, commands = $11,
            timeout_seconds = $12, updated_at = now()
      WHERE org_id = $1 AND project_id = $2 AND name = $3 RETURNING *`,
    [
      orgId,
      projectId,
      e.name,
      e.requires_approval,
      e.approval_roles,
      e.approval_user_ids,
      e.approval_expires_in_seconds,
      e.requires_passed,
      e.pool,
      JSON.stringify(e.tags),
      JSON.stringify(e.commands),
      e.timeout_seconds,
    ],
  );
  return rows[0];
}

export async function deleteEnvironment(tx: Queryable, orgId: string, projectId: string, name: string): Promise<boolean> {
  const { rowCount } = await tx.query('DELETE FROM environments WHERE org_id = $1 AND project_id = $2 AND name = $3', [
    orgId,
    projectId,
    name,
  ]);
  return rowCount > 0;
}

/** Serializes changes to a project's environments (defaults are created once, rules checked against a stable set). */
export async function lockProjectEnvironments(tx: Queryable, projectId: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`cairn:environments:${projectId}`]);
}
