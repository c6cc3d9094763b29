import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, Page, PageQuery, errorResponses } from '../../platform/http/schemas.js';
import {
  PROJECT_TYPES,
  createProject,
  deleteProject,
  getProject,
  listProjectsPage,
  patchProject,
  projectStatus,
} from './projects.service.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const ProjectType = Type.Union(PROJECT_TYPES.map((t) => Type.Literal(t)));
const Project = Type.Object({
  id: Type.String({ format: 'uuid' }),
  slug: Type.String(),
  name: Type.String(),
  description: Type.String(),
  repository_url: Nullable(Type.String()),
  project_type: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
});
const fields = {
  slug: Type.String({
    pattern: '^[a-z0-9][a-z0-9-]{0,62}$',
    description: 'Unique in your organization; derived from the name if absent',
  }),
  name: Type.String({ minLength: 1, maxLength: 200 }),
  description: Type.String({ maxLength: 10_000 }),
  repository_url: Nullable(Type.String({ format: 'uri', maxLength: 2048, pattern: '^(https?|ssh|git)://' })),
  project_type: ProjectType,
};
const CreateBody = Type.Object(
  {
    name: fields.name,
    slug: Type.Optional(fields.slug),
    description: Type.Optional(fields.description),
    repository_url: Type.Optional(fields.repository_url),
    project_type: Type.Optional(fields.project_type),
  },
  { additionalProperties: false },
);
const PatchBody = Type.Object(
  {
    name: Type.Optional(fields.name),
    slug: Type.Optional(fields.slug),
    description: Type.Optional(fields.description),
    repository_url: Type.Optional(fields.repository_url),
    project_type: Type.Optional(fields.project_type),
  },
  { additionalProperties: false, minProperties: 1 },
);
const ListQuery = Type.Object(
  {
    ...PageQuery,
    q: Type.Optional(Type.String({ maxLength: 200, description: 'Words matched as prefixes in name, slug and description' })),
    project_type: Type.Optional(ProjectType),
    sort: Type.Optional(
      Type.Union(
        ['created_at', '-created_at', 'updated_at', '-updated_at', 'name', '-name'].map((s) => Type.Literal(s)),
        {
          default: '-created_at',
        },
      ),
    ),
  },
  { additionalProperties: false },
);
const Status = Type.Object({
  project: Project,
  counts: Type.Object(
    { runs: Type.Integer(), active_runs: Type.Integer(), jobs: Type.Integer(), open_approvals: Type.Integer() },
    { description: 'Runs (and those running or blocked), jobs, approvals waiting for an answer' },
  ),
  complete: Type.Boolean({ description: 'True when every step of every run has finished' }),
  last_activity_at: Nullable(Type.String({ format: 'date-time' })),
});

export function projectRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/',
      {
        config: { permission: 'projects:write' },
        schema: {
          tags: ['projects'],
          summary: 'Create a project',
          body: CreateBody,
          response: { 201: Project, ...errorResponses(403, 409) },
        },
      },
      async (request, reply) => reply.code(201).send(await createProject(deps, authOf(request), request.body)),
    );

    app.get(
      '/',
      {
        config: { permission: 'projects:read' },
        schema: {
          tags: ['projects'],
          summary: 'List projects: filter, search, sort, cursor pages',
          querystring: ListQuery,
          response: { 200: Page(Project), ...errorResponses(403) },
        },
      },
      (request) => listProjectsPage(deps, authOf(request), request.query),
    );

    app.get(
      '/:id',
      {
        config: { permission: 'projects:read' },
        schema: {
          tags: ['projects'],
          summary: 'Get a project',
          params: IdParams,
          response: { 200: Project, ...errorResponses(403, 404) },
        },
      },
      (request) => getProject(deps, authOf(request), request.params.id),
    );

    app.patch(
      '/:id',
      {
        config: { permission: 'projects:write' },
        schema: {
          tags: ['projects'],
          summary: 'Update a project',
          params: IdParams,
          body: PatchBody,
          response: { 200: Project, ...errorResponses(403, 404, 409) },
        },
      },
      (request) => patchProject(deps, authOf(request), request.params.id, request.body),
    );

    app.delete(
      '/:id',
      {
        config: { permission: 'projects:write' },
        schema: {
          tags: ['projects'],
          summary: 'Delete a project (soft: history and audit trail are kept, the slug is freed)',
          params: IdParams,
          response: { 204: Type.Null(), ...errorResponses(403, 404) },
        },
      },
      async (request, reply) => {
        await deleteProject(deps, authOf(request), request.params.id);
        return reply.code(204).send(null);
      },
    );

    app.get(
      '/:id/status',
      {
        config: { permission: 'projects:read' },
        schema: {
          tags: ['projects'],
          summary: 'Project status summary: runs, jobs, open approvals, completion',
          params: IdParams,
          response: { 200: Status, ...errorResponses(403, 404) },
        },
      },
      (request) => projectStatus(deps, authOf(request), request.params.id),
    );
  };
}
