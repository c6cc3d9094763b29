// A run's artifacts by step: how a later step (or a person) finds the files an earlier
// step uploaded. Readable by users with jobs:read and by the token of any job of the run.
import type { AuthContext } from '../../platform/auth.js';
import type { BlobStore } from '../../platform/blobs.js';
import type { AppDeps } from '../../platform/deps.js';
import { BadRequestError, ConflictError, NotFoundError } from '../../platform/errors.js';
import { decodeCursor, encodeCursor } from '../../platform/http/schemas.js';
import { authorizeRunRead } from '../pipelines/job-caller.js';
import { openArtifact, presentArtifact } from './artifacts.service.js';
import { listRunArtifacts, type StepArtifactRow } from './run-artifacts.queries.js';

const present = (row: StepArtifactRow) => ({ ...presentArtifact(row), step_key: row.step_key });

export interface RunArtifactQuery {
  step?: string;
  path?: string;
  prefix?: string;
  limit?: number;
  cursor?: string;
}

export async function listRunArtifactsPage(deps: Pick<AppDeps, 'db'>, auth: AuthContext, runId: string, q: RunArtifactQuery) {
  await authorizeRunRead(deps, auth, runId);
  const limit = q.limit ?? 50;
  const cursor = q.cursor ? decodeCursor(q.cursor, 2) : undefined;
  if (cursor && !cursor.every((v) => typeof v === 'string')) decodeCursor('', 2); // the same 400 as any bad cursor
  const rows = await listRunArtifacts(deps.db, {
    orgId: auth.orgId,
    runId,
    step: q.step,
    path: q.path,
    prefix: q.prefix,
    after: cursor ? { step: cursor[0] as string, path: cursor[1] as string } : undefined,
    limit: limit + 1,
  });
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map(present),
    next_cursor: rows.length > limit && last ? encodeCursor([last.step_key, last.path]) : null,
  };
}

/** The latest upload of `path` by `step` (or by the only step that uploaded that path), opened. */
export async function openRunArtifact(
  deps: Pick<AppDeps, 'db'> & { blobs: BlobStore },
  auth: AuthContext,
  runId: string,
  q: { step?: string; path?: string },
) {
  await authorizeRunRead(deps, auth, runId);
  if (!q.path)
    throw new BadRequestError('Say which file with ?path= (and ?step= when several steps uploaded it).', 'path_required');
  const rows = await listRunArtifacts(deps.db, { orgId: auth.orgId, runId, step: q.step, path: q.path, limit: 3 });
  if (rows.length === 0) throw new NotFoundError(`Artifact "${q.path}"${q.step ? ` of step "${q.step}"` : ''}`);
  if (rows.length > 1) {
    const steps = rows.map((r) => r.step_key);
    throw new ConflictError(`Steps ${steps.join(', ')} each uploaded "${q.path}": say which with ?step=.`, 'ambiguous_artifact', {
      steps,
    });
  }
  return openArtifact(deps, auth, rows[0]!.id);
}
