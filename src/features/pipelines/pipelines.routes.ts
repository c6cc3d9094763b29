import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { ForbiddenError, NotFoundError } from '../../platform/errors.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, Page, PageQuery, ProblemSchema, Timestamp, errorResponses } from '../../platform/http/schemas.js';
import { topicRegistry } from '../events/events.topics.js';
import { getProject } from '../projects/projects.service.js';
import { findRun } from '../runs/runs.queries.js';
import { Run } from '../runs/runs.schemas.js';
import { PIPELINE_SCHEMA } from './pipeline.schema.js';
import {
  getCurrentPipeline,
  getPipelineVersion,
  listVersionsPage,
  pipelineSource,
  putPipeline,
  uploadToRun,
  validatePipeline,
} from './pipelines.service.js';

export const YAML_TYPES = ['text/yaml', 'application/yaml', 'application/x-yaml', 'text/x-yaml', 'text/plain'];
/** A 1 MiB pipeline, JSON-escaped, still fits; the parser refuses past 1 MiB with a located error. */
const PIPELINE_BODY_LIMIT = 3 * 1024 * 1024;

/** The YAML as the body, or `{"source": "…"}` as JSON. */
export const PipelineBody = {
  content: {
    'application/json': {
      schema: Type.Object(
        { source: Type.String({ maxLength: PIPELINE_BODY_LIMIT, description: 'The pipeline YAML' }) },
        { additionalProperties: false },
      ),
    },
    ...Object.fromEntries(YAML_TYPES.map((type) => [type, { schema: Type.String({ description: 'The pipeline YAML' }) }])),
  },
};

/** Takes YAML bodies as text; registered in this plugin only. */
export function acceptYamlBodies(app: FastifyInstance): void {
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(YAML_TYPES, { parseAs: 'string', bodyLimit: PIPELINE_BODY_LIMIT }, (_request, body, done) =>
    done(null, body),
  );
}

const Located = Type.Object(
  {
    line: Type.Integer({ description: '1-based' }),
    column: Type.Integer({ description: '1-based' }),
    path: Type.String({ description: 'e.g. steps[2].needs[0]' }),
    message: Type.String(),
  },
  { additionalProperties: true },
);
/** 400 problem: `invalid_pipeline` carries `errors: [{line, column, path, message}]`. */
const InvalidPipeline = Type.Object(
  {
    ...ProblemSchema.properties,
    errors: Type.Optional(
      Type.Array(
        Type.Union([Located, Type.Object({ field: Type.String(), message: Type.String() }, { additionalProperties: true })]),
      ),
    ),
  },
  { additionalProperties: true, description: 'Bad input; an invalid pipeline lists each problem with its line and column' },
);
const errors = (...statuses: number[]) => ({ ...errorResponses(...statuses), 400: InvalidPipeline });

const Definition = Type.Unknown({ description: 'The normalized pipeline (src/features/pipelines/pipeline.model.ts)' });
const Version = Type.Object({
  id: Type.String({ format: 'uuid' }),
  project_id: Type.String({ format: 'uuid' }),
  version: Type.Integer(),
  source: Type.String(),
  definition: Definition,
  created_by: Type.String(),
  created_at: Timestamp,
});
const VersionSummary = Type.Object({
  id: Type.String({ format: 'uuid' }),
  version: Type.Integer(),
  steps: Type.Integer({ description: 'How many steps it has' }),
  created_by: Type.String(),
  created_at: Timestamp,
});

export function pipelineRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  // `pipeline.updated` reaches the streams (`org`, `project:<id>`) of those who may read projects.
  if (topicRegistry.permissionFor('pipeline.updated') === null) topicRegistry.registerEventTypes(['pipeline.'], 'projects:read');
  return async (app) => {
    acceptYamlBodies(app);
    const tags = ['pipelines'];

    app.get(
      '/pipelines/schema.json',
      {
        config: { permission: 'public' },
        schema: {
          tags,
          summary: 'The JSON Schema (draft 2020-12) of the pipeline YAML, for editors',
          security: [],
          response: { 200: Type.Object({}, { additionalProperties: true }) },
        },
      },
      async (_request, reply) =>
        reply.type('application/schema+json').header('cache-control', 'public, max-age=300').send(PIPELINE_SCHEMA),
    );

    app.post(
      '/pipelines/validate',
      {
        config: { permission: 'authenticated' },
        bodyLimit: PIPELINE_BODY_LIMIT,
        schema: {
          tags,
          summary: 'Validate a pipeline without storing it: 200 with its normalized form, or 400 with located errors',
          body: PipelineBody,
          response: {
            200: Type.Object({ valid: Type.Literal(true), steps: Type.Integer(), definition: Definition }),
            ...errors(),
          },
        },
      },
      (request) => validatePipeline(pipelineSource(request.body)),
    );

    app.put(
      '/projects/:id/pipeline',
      {
        config: { permission: 'projects:write' },
        bodyLimit: PIPELINE_BODY_LIMIT,
        schema: {
          tags,
          summary: 'Upload the project’s pipeline: a new version (400 with located errors when it is not valid)',
          params: IdParams,
          body: PipelineBody,
          response: { 200: Version, ...errors(403, 404, 413, 415) },
        },
      },
      (request) => putPipeline(deps, authOf(request), request.params.id, request.body),
    );

    app.get(
      '/projects/:id/pipeline',
      {
        config: { permission: 'projects:read' },
        schema: {
          tags,
          summary: 'The project’s current pipeline (or `?version=`): source, normalized definition, version',
          params: IdParams,
          querystring: Type.Object(
            { version: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647 })) },
            { additionalProperties: false },
          ),
          response: { 200: Version, ...errorResponses(403, 404) },
        },
      },
      async (request) => {
        const auth = authOf(request);
        await getProject(deps, auth, request.params.id);
        const { version } = request.query;
        return version === undefined
          ? getCurrentPipeline(deps, auth, request.params.id)
          : getPipelineVersion(deps, auth, request.params.id, version);
      },
    );

    app.get(
      '/projects/:id/pipeline/versions',
      {
        config: { permission: 'projects:read' },
        schema: {
          tags,
          summary: 'The project’s pipeline versions, newest first',
          params: IdParams,
          querystring: Type.Object(PageQuery, { additionalProperties: false }),
          response: { 200: Page(VersionSummary), ...errorResponses(403, 404) },
        },
      },
      async (request) => {
        const auth = authOf(request);
        await getProject(deps, auth, request.params.id);
        return listVersionsPage(deps, auth, request.params.id, request.query);
      },
    );

    app.post(
      '/runs/:id/pipeline',
      {
        // A job's own token (job:self); checked in the handler so another organization's run is a 404 for anyone.
        config: { permission: 'authenticated' },
        bodyLimit: PIPELINE_BODY_LIMIT,
        schema: {
          tags: [...tags, 'agent protocol'],
          summary: 'Dynamic pipeline: a running step adds steps to its own run (job token; `cairn pipeline upload`)',
          description:
            'Authorization: the job’s token (`CAIRN_JOB_TOKEN`). `needs` may name the run’s existing steps; steps that need ' +
            'nothing wait for the uploading step. Their keys must be new to the run.',
          params: IdParams,
          body: PipelineBody,
          response: { 200: Run, ...errors(403, 404, 409, 413, 415) },
        },
      },
      async (request) => {
        const auth = authOf(request);
        if (!auth.jobId) {
          if (!(await findRun(deps.db, auth.orgId, request.params.id))) throw new NotFoundError('Run');
          throw new ForbiddenError('Steps are uploaded into a run by one of its running jobs, with that job’s token.');
        }
        return uploadToRun(deps, auth, {
          runId: request.params.id,
          authorization: request.headers.authorization,
          body: request.body,
        });
      },
    );
  };
}
