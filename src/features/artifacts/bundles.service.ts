// A project's artifacts as a whole (seed 003's artifact API): the summary, one ZIP of a
// project's or a run's artifacts, deleting a project's, and retention by age — the admin
// endpoint now, the leader loop (bundles.retention.ts) every so often.
import type { Readable } from 'node:stream';
import type { AuthContext } from '../../platform/auth.js';
import { systemContext } from '../../platform/auth.js';
import type { BlobStore } from '../../platform/blobs.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { AppDeps } from '../../platform/deps.js';
import { ConflictError, NotFoundError } from '../../platform/errors.js';
import { decodeCursor, encodeCursor } from '../../platform/http/schemas.js';
import { recordAudit, recordAuditMany } from '../audit/audit.record.js';
import { findProject } from '../projects/projects.queries.js';
import { findRun } from '../runs/runs.queries.js';
import { collectBlobs } from './artifacts.retention.js';
import { artifactTotals, bundleEntries, deleteArtifactsBefore, deleteProjectArtifacts, totalsByRun } from './bundles.queries.js';
import { streamBundle } from './bundles.zip.js';

type Deps = Pick<AppDeps, 'db' | 'bus'> & { blobs: BlobStore };

/** ZIP's central directory is built in memory (~100 bytes an entry): past this, download run by run. */
export const MAX_BUNDLE_ENTRIES = 100_000;
const DELETE_BATCH = 1_000;

async function requireProject(deps: Pick<AppDeps, 'db'>, auth: AuthContext, projectId: string) {
  const project = await findProject(deps.db, auth.orgId, projectId);
  if (!project) throw new NotFoundError('Project');
  return project;
}

export async function artifactSummary(
  deps: Pick<AppDeps, 'db'>,
  auth: AuthContext,
  projectId: string,
  q: { limit?: number; cursor?: string },
) {
  await requireProject(deps, auth, projectId);
  const limit = q.limit ?? 50;
  const cursor = q.cursor ? decodeCursor(q.cursor, 1) : undefined;
  if (cursor && !Number.isInteger(cursor[0])) decodeCursor('', 1); // the same 400 as any bad cursor
  const scope = { orgId: auth.orgId, projectId };
  const [all, unattached, runs] = await Promise.all([
    artifactTotals(deps.db, scope),
    artifactTotals(deps.db, { ...scope, withoutRun: true }),
    totalsByRun(deps.db, { ...scope, beforeNumber: cursor?.[0] as number | undefined, limit: limit + 1 }),
  ]);
  const page = runs.slice(0, limit);
  const last = page.at(-1);
  return {
    project_id: projectId,
    count: all.count,
    bytes: all.bytes,
    without_run: unattached,
    runs: page,
    next_cursor: runs.length > limit && last ? encodeCursor([last.run_number]) : null,
  };
}

/** Checks run before the first byte (404, 409); the archive streams afterwards. */
export async function openBundle(
  deps: Deps & { log?: { warn(obj: object, msg: string): void } },
  auth: AuthContext,
  scope: { projectId?: string; runId?: string },
): Promise<{ filename: string; stream: Readable }> {
  let projectId = scope.projectId;
  let filename: string;
  if (scope.runId) {
    const run = await findRun(deps.db, auth.orgId, scope.runId);
    if (!run) throw new NotFoundError('Run');
    projectId = run.project_id;
    const project = await requireProject(deps, auth, projectId);
    filename = `${project.slug}-run-${run.number}-artifacts.zip`;
  } else {
    const project = await requireProject(deps, auth, projectId!);
    filename = `${project.slug}-artifacts.zip`;
  }
  const { count } = await artifactTotals(deps.db, { orgId: auth.orgId, projectId: projectId!, runId: scope.runId });
  if (count > MAX_BUNDLE_ENTRIES) {
    throw new ConflictError(
      `${count} artifacts are more than one bundle holds (${MAX_BUNDLE_ENTRIES}); download them run by run.`,
      'bundle_too_large',
      { count, max_entries: MAX_BUNDLE_ENTRIES },
    );
  }
  const stream = streamBundle(
    {
      blobs: deps.blobs,
      page: (after, limit) =>
        bundleEntries(deps.db, { orgId: auth.orgId, projectId: projectId!, runId: scope.runId, after, limit }),
    },
    deps.log,
  );
  return { filename, stream };
}

/** Deletes every artifact of the project (in bounded transactions, each audited), then their unused blobs. */
export async function deleteAllProjectArtifacts(deps: Deps, auth: AuthContext, projectId: string) {
  await requireProject(deps, auth, projectId);
  const total = { count: 0, bytes: 0 };
  for (;;) {
    const batch = await deps.db.transaction(async (tx) => {
      const gone = await deleteProjectArtifacts(tx, auth.orgId, projectId, DELETE_BATCH);
      if (gone.count > 0) {
        await recordAudit(tx, auth, {
          action: 'project.artifacts_deleted',
          resource: ['project', projectId],
          projectId,
          details: { count: gone.count, bytes: gone.bytes },
        });
      }
      return gone;
    });
    total.count += batch.count;
    total.bytes += batch.bytes;
    if (batch.count < DELETE_BATCH) break;
  }
  const blobs = await collectBlobs(deps.db, deps.blobs);
  if (total.count > 0) publishOrgEvent(deps.bus, auth.orgId, 'artifact.deleted', { project_id: projectId, count: total.count });
  return { deleted: total.count, bytes: total.bytes, blobs_removed: blobs };
}

/**
 * Deletes artifacts older than `olderThanDays` — of the caller's organization (admin
 * endpoint) or of all (the retention loop, `auth` undefined) — except those of jobs still
 * in the live queue; then the blobs nothing names any more.
 */
export async function deleteOldArtifacts(deps: Deps, auth: AuthContext | undefined, olderThanDays: number, now = new Date()) {
  const cutoff = new Date(now.getTime() - olderThanDays * 86_400_000);
  const total = { count: 0, bytes: 0 };
  for (;;) {
    const gone = await deps.db.transaction(async (tx) => {
      const perOrg = await deleteArtifactsBefore(tx, { orgId: auth?.orgId, cutoff, limit: DELETE_BATCH });
      if (perOrg.length === 0) return perOrg;
      await recordAuditMany(
        tx,
        perOrg.map((g) => ({
          auth: auth ?? systemContext(g.org_id, 'artifact-retention'),
          input: {
            action: auth ? 'artifacts.cleaned_up' : 'artifacts.expired',
            resource: ['organization', g.org_id] as const,
            details: { count: g.count, bytes: g.bytes, older_than_days: olderThanDays, cutoff: cutoff.toISOString() },
          },
        })),
      );
      return perOrg;
    });
    const count = gone.reduce((n, g) => n + g.count, 0);
    total.count += count;
    total.bytes += gone.reduce((n, g) => n + g.bytes, 0);
    if (count < DELETE_BATCH) break;
  }
  const blobs = await collectBlobs(deps.db, deps.blobs);
  return { deleted: total.count, bytes: total.bytes, blobs_removed: blobs, cutoff: cutoff.toISOString() };
}
