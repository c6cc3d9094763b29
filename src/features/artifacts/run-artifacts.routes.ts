import type { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { createBlobStore } from '../../platform/blobs.js';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, Page, PageQuery, errorResponses } from '../../platform/http/schemas.js';
import { ARTIFACT_PATH_MAX } from './artifacts.paths.js';
import { replyWithArtifact } from './artifacts.reply.js';
import { listRunArtifactsPage, openRunArtifact } from './run-artifacts.service.js';

const StepKey = Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,100}$', description: 'The step that uploaded it' });
const Path = Type.String({ minLength: 1, maxLength: ARTIFACT_PATH_MAX, description: 'The artifact’s exact path' });
const RunArtifact = Type.Object({
  id: Type.String({ format: 'uuid' }),
  job_id: Type.String({ format: 'uuid' }),
  attempt: Type.Integer(),
  project_id: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
  run_id: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
  step_key: Type.String(),
  path: Type.String(),
  size: Type.Integer(),
  sha256: Type.String({ description: 'SHA-256 of the content, hex' }),
  content_type: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
});
const access =
  'Users with jobs:read, or the token of any job of this run (`CAIRN_JOB_TOKEN`: how a later step reads an earlier one’s files).';

export function runArtifactRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  const service = { ...deps, blobs: createBlobStore(deps.config.blobDir) };
  return async (app) => {
    app.get(
      '/runs/:id/artifacts',
      {
        // jobs:read or a job token of this run: decided by the service.
        config: { permission: 'authenticated' },
        schema: {
          tags: ['artifacts', 'pipelines'],
          summary: 'A run’s artifacts by step (the latest upload of each path), for hand-offs between steps',
          description: access,
          params: IdParams,
          querystring: Type.Object(
            {
              ...PageQuery,
              step: Type.Optional(StepKey),
              path: Type.Optional(Path),
              prefix: Type.Optional(
                Type.String({ minLength: 1, maxLength: ARTIFACT_PATH_MAX, description: 'Paths starting with this' }),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 200: Page(RunArtifact), ...errorResponses(403, 404) },
        },
      },
      (request) => listRunArtifactsPage(deps, authOf(request), request.params.id, request.query),
    );

    app.get(
      '/runs/:id/artifacts/file',
      {
        config: { permission: 'authenticated' },
        compress: false,
        schema: {
          tags: ['artifacts', 'pipelines'],
          summary: 'Download a run’s artifact by step and path (`cairn step artifact download`)',
          description: `${access} \`path\` is required; \`step\` too when several steps uploaded that path (409 otherwise).`,
          params: IdParams,
          querystring: Type.Object({ step: Type.Optional(StepKey), path: Type.Optional(Path) }, { additionalProperties: false }),
          produces: ['application/octet-stream'],
          response: {
            200: Type.Unsafe<Readable>({ type: 'string', format: 'binary' }),
            304: Type.Null({ description: 'Not modified (If-None-Match matched the ETag)' }),
            ...errorResponses(403, 404, 409),
          },
        },
      },
      async (request, reply) => {
        const { artifact, open } = await openRunArtifact(service, authOf(request), request.params.id, request.query);
        return replyWithArtifact(request, reply, artifact, open, 'private, no-cache');
      },
    );
  };
}
