// Artifacts: files a job uploads while it holds its lease. The bytes stream into the blob
// store (hashed on the way, never held in memory); the row names them. Reads are scoped to
// the caller's organization like everything else.
import { randomUUID } from 'node:crypto';
import type { ReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { AuthContext } from '../../platform/auth.js';
import { BlobTooLargeError, type BlobStore, type StagedBlob } from '../../platform/blobs.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { AppDeps } from '../../platform/deps.js';
import { AppError, BadRequestError, NotFoundError } from '../../platform/errors.js';
import { decodeCursor, encodeCursor, iso } from '../../platform/http/schemas.js';
import { recordAudit } from '../audit/audit.record.js';
import { withLeasedJob } from '../logs/lease-fence.js';
import { findJob } from '../queue/jobs.queries.js';
import { checkArtifactPath, contentTypeFor } from './artifacts.paths.js';
import {
  deleteArtifactAt,
  findArtifact,
  insertArtifact,
  listJobArtifacts,
  lockBlob,
  queueBlobCandidates,
  type ArtifactRow,
} from './artifacts.queries.js';

type Deps = Pick<AppDeps, 'db' | 'bus' | 'config'> & { blobs: BlobStore };

export function presentArtifact(a: ArtifactRow) {
  return {
    id: a.id,
    job_id: a.job_id,
    attempt: a.attempt,
    project_id: a.project_id,
    run_id: a.run_id,
    path: a.path,
    size: a.size,
    sha256: a.sha256,
    content_type: a.content_type,
    created_at: iso(a.created_at),
  };
}
export type ArtifactView = ReturnType<typeof presentArtifact>;

const tooLarge = (max: number) =>
  new AppError(413, 'artifact_too_large', 'Payload too large', `An artifact may hold at most ${max} bytes.`, { max_bytes: max });

/** The client's side of the stream broke (went away, or sent a corrupt compressed body). */
function isClientStreamError(error: unknown): boolean {
  const e = error as { code?: string; message?: string } | undefined;
  const code = e?.code ?? '';
  return (
    ['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'ECONNABORTED'].includes(code) ||
    code.startsWith('Z_') ||
    e?.message === 'aborted'
  );
}

export interface UploadInput {
  jobId: string;
  leaseToken: string;
  path: string;
  /** The request body; absent for an empty upload sent without a content type. */
  body: Readable | undefined;
  /** Content-Length when the client sent one. */
  declaredBytes: number | undefined;
}

/** Streams the body into the blob store and names it in the job's current attempt (replacing that path). */
export async function uploadArtifact(deps: Deps, auth: AuthContext, input: UploadInput): Promise<ArtifactView> {
  const path = checkArtifactPath(input.path);
  const max = deps.config.artifactMaxBytes;
  if (input.declaredBytes !== undefined && input.declaredBytes > max) throw tooLarge(max);
  // Fence before reading a byte, so a stale agent does not send a gigabyte to be refused.
  await withLeasedJob(deps, auth, input.jobId, input.leaseToken, async () => undefined);

  let staged: StagedBlob;
  try {
    staged = await deps.blobs.stage(input.body ?? Readable.from([]), { maxBytes: max });
  } catch (error) {
    if (error instanceof BlobTooLargeError) throw tooLarge(max);
    if (isClientStreamError(error))
      throw new BadRequestError('The upload ended before the whole body arrived.', 'upload_incomplete');
    throw error; // the store failed (disk full, permissions): ours, a 500
  }

  let committed = false;
  try {
    const row = await withLeasedJob(deps, auth, input.jobId, input.leaseToken, async (tx, job, after) => {
      await lockBlob(tx, staged.sha256);
      await staged.commit();
      committed = true;
      const replaced = await deleteArtifactAt(tx, job.id, job.attempt, path);
      if (replaced && replaced.sha256 !== staged.sha256) await queueBlobCandidates(tx, [replaced.sha256]);
      const row = await insertArtifact(tx, {
        id: randomUUID(),
        org_id: job.org_id,
        job_id: job.id,
        attempt: job.attempt,
        project_id: job.project_id,
        run_id: job.run_id,
        path,
        size: staged.size,
        sha256: staged.sha256,
        content_type: contentTypeFor(path),
        agent_id: auth.agentId ?? null,
      });
      await recordAudit(tx, auth, {
        action: 'artifact.uploaded',
        resource: ['artifact', row.id],
        projectId: row.project_id,
        details: {
          job_id: job.id,
          attempt: job.attempt,
          path,
          size: row.size,
          sha256: row.sha256,
          ...(replaced ? { replaced: replaced.id } : {}),
        },
      });
      after.add(() =>
        publishOrgEvent(deps.bus, row.org_id, 'artifact.uploaded', {
          artifact_id: row.id,
          job_id: row.job_id,
          project_id: row.project_id,
          run_id: row.run_id,
        }),
      );
      return row;
    });
    return presentArtifact(row);
  } catch (error) {
    await staged.discard();
    // Visible in the store but the transaction did not commit: let the collector decide.
    if (committed) await queueBlobCandidates(deps.db, [staged.sha256]).catch(() => {});
    throw error;
  }
}

export async function getArtifact(deps: Pick<AppDeps, 'db'>, auth: AuthContext, id: string): Promise<ArtifactView> {
  const row = await findArtifact(deps.db, auth.orgId, id);
  if (!row) throw new NotFoundError('Artifact');
  return presentArtifact(row);
}

export interface ListQuery {
  attempt?: number;
  limit?: number;
  cursor?: string;
}

export async function listArtifactsPage(deps: Pick<AppDeps, 'db'>, auth: AuthContext, jobId: string, q: ListQuery) {
  if (!(await findJob(deps.db, auth.orgId, jobId))) throw new NotFoundError('Job');
  const limit = q.limit ?? 50;
  const cursor = q.cursor ? decodeCursor(q.cursor, 2) : undefined;
  if (cursor && (typeof cursor[0] !== 'number' || typeof cursor[1] !== 'string')) decodeCursor('', 2); // the same 400
  const rows = await listJobArtifacts(deps.db, {
    orgId: auth.orgId,
    jobId,
    attempt: q.attempt,
    after: cursor ? { attempt: cursor[0] as number, path: cursor[1] as string } : undefined,
    limit: limit + 1,
  });
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map(presentArtifact),
    next_cursor: rows.length > limit && last ? encodeCursor([last.attempt, last.path]) : null,
  };
}

/** The artifact and its opened bytes; a 404 for another organization's id, checked first. */
export async function openArtifact(
  deps: Pick<AppDeps, 'db'> & { blobs: BlobStore },
  auth: AuthContext,
  id: string,
): Promise<{ artifact: ArtifactView; open: () => Promise<ReadStream> }> {
  const artifact = await getArtifact(deps, auth, id);
  return {
    artifact,
    open: async () => {
      try {
        return await deps.blobs.open(artifact.sha256);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        // The row names bytes the store does not have: lost storage, not a client mistake.
        throw new AppError(
          500,
          'artifact_content_missing',
          'Internal server error',
          'The artifact’s content is missing from storage.',
        );
      }
    },
  };
}
