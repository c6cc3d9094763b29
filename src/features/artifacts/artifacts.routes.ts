import type { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { createBlobStore } from '../../platform/blobs.js';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, Page, PageQuery, errorResponses } from '../../platform/http/schemas.js';
import { topicRegistry } from '../events/events.topics.js';
import { artifactUploader } from '../pipelines/job-caller.js';
import { ARTIFACT_PATH_MAX } from './artifacts.paths.js';
import { replyWithArtifact } from './artifacts.reply.js';
import { getArtifact, listArtifactsPage, openArtifact, uploadArtifact } from './artifacts.service.js';

const Artifact = Type.Object({
  id: Type.String({ format: 'uuid' }),
  job_id: Type.String({ format: 'uuid' }),
  attempt: Type.Integer(),
  project_id: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
  run_id: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
  path: Type.String(),
  size: Type.Integer(),
  sha256: Type.String({ description: 'SHA-256 of the content, hex' }),
  content_type: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
});

export function artifactRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  // `artifact.*` events reach the event streams (`org`, `project:<id>`, `job:<id>`) of those who may read jobs.
  if (topicRegistry.permissionFor('artifact.uploaded') === null) topicRegistry.registerEventTypes(['artifact.'], 'jobs:read');
  const blobs = createBlobStore(deps.config.blobDir);
  const service = { ...deps, blobs };
  return async (app) => {
    // Uploads are the only bodies here, and they are raw bytes: the stream is handed to the
    // blob store as it arrives (Fastify's bodyLimit does not apply; the store enforces
    // CAIRN_ARTIFACT_MAX_BYTES). Any other content type is a 415. This plugin only.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

    app.put(
      '/jobs/:id/artifacts',
      {
        // The agent (agent:work + X-Lease-Token), or the job's own token (job:self: `cairn step
        // artifact upload` in its shell) — decided by artifactUploader.
        config: { permission: 'authenticated' },
        schema: {
          tags: ['artifacts', 'agent protocol'],
          summary: 'Upload an artifact of the job’s current attempt (agent or job token, fenced by the lease; streamed)',
          description:
            'Body: the file’s bytes as `application/octet-stream`. The agent sends the lease token in `X-Lease-Token`, not the URL; ' +
            'the job’s own token (`CAIRN_JOB_TOKEN`) needs no header. ' +
            'The same path uploaded again in the same attempt replaces the earlier artifact. 413 past the size limit.',
          params: IdParams,
          querystring: Type.Object(
            {
              path: Type.String({
                minLength: 1,
                maxLength: ARTIFACT_PATH_MAX,
                description: 'Relative, normalized, "/"-separated; no "..", no leading "/"',
              }),
            },
            { additionalProperties: false },
          ),
          headers: Type.Object({ 'x-lease-token': Type.Optional(Type.String({ format: 'uuid' })) }),
          // Documents the body; an empty schema, since what arrives is a stream the service reads.
          body: { content: { 'application/octet-stream': { schema: Type.Unknown({ description: 'The file’s bytes' }) } } },
          response: { 201: Artifact, ...errorResponses(403, 404, 409, 413, 415) },
        },
      },
      async (request, reply) => {
        const length = request.headers['content-length'];
        try {
          const uploader = await artifactUploader(deps, authOf(request), {
            jobId: request.params.id,
            authorization: request.headers.authorization,
            leaseToken: request.headers['x-lease-token'],
          });
          const artifact = await uploadArtifact(service, uploader.auth, {
            jobId: request.params.id,
            leaseToken: uploader.leaseToken,
            path: request.query.path,
            body: request.body as Readable | undefined,
            declaredBytes: length === undefined ? undefined : Number(length),
          });
          return reply.code(201).send(artifact);
        } catch (error) {
          // What is left of a refused body is drained; closing afterwards bounds how much.
          reply.header('connection', 'close');
          throw error;
        }
      },
    );

    app.get(
      '/jobs/:id/artifacts',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags: ['artifacts'],
          summary: 'List a job’s artifacts, by attempt then path',
          params: IdParams,
          querystring: Type.Object(
            { ...PageQuery, attempt: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })) },
            { additionalProperties: false },
          ),
          response: { 200: Page(Artifact), ...errorResponses(403, 404) },
        },
      },
      (request) => listArtifactsPage(deps, authOf(request), request.params.id, request.query),
    );

    app.get(
      '/artifacts/:id',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags: ['artifacts'],
          summary: 'An artifact’s metadata',
          params: IdParams,
          response: { 200: Artifact, ...errorResponses(403, 404) },
        },
      },
      (request) => getArtifact(deps, authOf(request), request.params.id),
    );

    app.get(
      '/artifacts/:id/download',
      {
        config: { permission: 'jobs:read' },
        // Sent as stored: compressing would change the bytes that Content-Length and Digest describe.
        compress: false,
        schema: {
          tags: ['artifacts'],
          summary: 'Download an artifact’s bytes (ETag and Digest carry its SHA-256)',
          params: IdParams,
          produces: ['application/octet-stream'],
          response: {
            200: Type.Unsafe<Readable>({ type: 'string', format: 'binary' }),
            304: Type.Null({ description: 'Not modified (If-None-Match matched the ETag)' }),
            ...errorResponses(403, 404),
          },
        },
      },
      async (request, reply) => {
        const { artifact, open } = await openArtifact(service, authOf(request), request.params.id);
        return replyWithArtifact(request, reply, artifact, open, 'private, max-age=31536000, immutable');
      },
    );
  };
}
