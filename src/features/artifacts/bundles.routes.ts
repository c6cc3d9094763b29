// A project's artifacts as a whole: summary, ZIP bundles (project or run), deletion and
// retention cleanup (seed 003's artifact API). See bundles.md.
import type { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { createBlobStore } from '../../platform/blobs.js';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, PageQuery, Timestamp, Uuid, errorResponses } from '../../platform/http/schemas.js';
import { contentDisposition } from './artifacts.paths.js';
import { artifactSummary, deleteAllProjectArtifacts, deleteOldArtifacts, openBundle } from './bundles.service.js';

const Totals = { count: Type.Integer(), bytes: Type.Integer() };
const Summary = Type.Object({
  project_id: Uuid,
  count: Type.Integer({ description: 'Artifacts stored (every attempt’s uploads)' }),
  bytes: Type.Integer(),
  without_run: Type.Object(Totals, { description: 'Artifacts of jobs enqueued outside any run' }),
  runs: Type.Array(Type.Object({ run_id: Uuid, run_number: Type.Integer(), ...Totals }), {
    description: 'Per run, newest first (cursor pages)',
  }),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
});
const Deleted = Type.Object({
  deleted: Type.Integer({ description: 'Artifacts deleted' }),
  bytes: Type.Integer({ description: 'Their total size' }),
  blobs_removed: Type.Integer({ description: 'Stored files no artifact names any more, removed' }),
});

const ZIP_DESCRIPTION =
  'One ZIP, streamed as it is built (nothing is held in memory), zip64 when large. Entries are named ' +
  '`<run number>/<step key>/<path>` (`jobs/<job id>/<path>` for jobs outside runs), holding the latest upload of each ' +
  'path per step. Text is deflated, everything else stored. A failure mid-way ends the download with an error rather ' +
  'than a ZIP missing files. 409 `bundle_too_large` past 100,000 artifacts: download run by run.';

export function bundleRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  const service = { ...deps, blobs: createBlobStore(deps.config.blobDir) };
  const tags = ['artifacts'];
  const zipResponse = {
    200: Type.Unsafe<Readable>({ type: 'string', format: 'binary', description: 'application/zip' }),
    ...errorResponses(403, 404, 409),
  };
  return async (app) => {
    app.get(
      '/projects/:id/artifacts/summary',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags,
          summary: 'A project’s artifacts: count and size in all and per run',
          params: IdParams,
          querystring: Type.Object(PageQuery, { additionalProperties: false }),
          response: { 200: Summary, ...errorResponses(403, 404) },
        },
      },
      (request) => artifactSummary(deps, authOf(request), request.params.id, request.query),
    );

    const sendZip = async (request: FastifyRequest, reply: FastifyReply, scope: { projectId?: string; runId?: string }) => {
      const { filename, stream } = await openBundle({ ...service, log: request.log }, authOf(request), scope);
      return reply
        .header('content-type', 'application/zip')
        .header('content-disposition', contentDisposition(filename))
        .header('cache-control', 'private, no-store')
        .send(stream);
    };

    app.get(
      '/projects/:id/artifacts/download',
      {
        config: { permission: 'jobs:read' },
        compress: false,
        schema: {
          tags,
          summary: 'Download all of a project’s artifacts as one ZIP (streamed)',
          description: ZIP_DESCRIPTION,
          params: IdParams,
          produces: ['application/zip'],
          response: zipResponse,
        },
      },
      (request, reply) => sendZip(request, reply, { projectId: request.params.id }),
    );

    app.get(
      '/runs/:id/artifacts/download',
      {
        config: { permission: 'jobs:read' },
        compress: false,
        schema: {
          tags,
          summary: 'Download all of a run’s artifacts as one ZIP (streamed)',
          description: ZIP_DESCRIPTION,
          params: IdParams,
          produces: ['application/zip'],
          response: zipResponse,
        },
      },
      (request, reply) => sendZip(request, reply, { runId: request.params.id }),
    );

    app.delete(
      '/projects/:id/artifacts',
      {
        config: { permission: 'queue:admin' },
        schema: {
          tags,
          summary: 'Admins: delete every artifact of the project (and the stored files nothing else names)',
          params: IdParams,
          response: { 200: Deleted, ...errorResponses(403, 404) },
        },
      },
      (request) => deleteAllProjectArtifacts(service, authOf(request), request.params.id),
    );

    app.delete(
      '/artifacts/cleanup-old',
      {
        config: { permission: 'queue:admin' },
        schema: {
          tags,
          summary: 'Admins: delete the organization’s artifacts older than N days now (retention cleanup)',
          description:
            'Artifacts of jobs still queued or running are kept. The same cleanup runs in the background when CAIRN_ARTIFACT_RETENTION_DAYS is set.',
          querystring: Type.Object(
            {
              older_than_days: Type.Integer({
                minimum: 0,
                maximum: 36_500,
                description: 'Delete what was uploaded before now minus this',
              }),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ ...Deleted.properties, cutoff: Timestamp }), ...errorResponses(403) },
        },
      },
      (request) => deleteOldArtifacts(service, authOf(request), request.query.older_than_days),
    );
  };
}
