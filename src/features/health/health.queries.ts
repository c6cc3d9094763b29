import type { Queryable } from '../../platform/db/index.js';

export async function databaseVersion(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ version: string }>('SELECT current_setting($1) AS version', ['server_version']);
  return rows[0]!.version;
}
