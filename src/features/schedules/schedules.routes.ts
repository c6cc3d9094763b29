import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, Page, PageQuery, Timestamp, Uuid, errorResponses } from '../../platform/http/schemas.js';
import { topicRegistry } from '../events/events.topics.js';
import { getProject } from '../projects/projects.service.js';
import {
  createSchedule,
  deleteSchedule,
  getSchedule,
  listFiringsPage,
  listSchedulesPage,
  patchSchedule,
} from './schedules.service.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

const fields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  cron: Type.String({
    minLength: 1,
    maxLength: 200,
    description: 'Five fields (minute hour day-of-month month day-of-week), or @hourly, @daily, @weekly, @monthly, @yearly',
  }),
  timezone: Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone the expression is read in (default UTC)' }),
  enabled: Type.Boolean(),
  branch: Nullable(Type.String({ minLength: 1, maxLength: 255 })),
  commit: Nullable(Type.String({ pattern: '^[0-9a-fA-F]{4,64}$' })),
  message: Nullable(Type.String({ maxLength: 10_000 })),
  env: Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' }), Type.String({ maxLength: 32_768 }), {
    maxProperties: 128,
    description: 'Overrides for every command step of the runs it starts (not secret)',
  }),
  missed: Type.Union([Type.Literal('skip'), Type.Literal('run_once')], {
    description: 'Occurrences missed while the scheduler was down: skip them (default), or start one run for all of them',
  }),
};

const CreateBody = Type.Object(
  {
    name: fields.name,
    cron: fields.cron,
    timezone: Type.Optional(fields.timezone),
    enabled: Type.Optional(fields.enabled),
    branch: Type.Optional(fields.branch),
    commit: Type.Optional(fields.commit),
    message: Type.Optional(fields.message),
    env: Type.Optional(fields.env),
    missed: Type.Optional(fields.missed),
  },
  { additionalProperties: false },
);
const PatchBody = Type.Object(
  Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, Type.Optional(v)])) as {
    [K in keyof typeof fields]: ReturnType<typeof Type.Optional<(typeof fields)[K]>>;
  },
  { additionalProperties: false, minProperties: 1 },
);

const Schedule = Type.Object({
  id: Uuid,
  project_id: Uuid,
  name: Type.String(),
  cron: Type.String(),
  timezone: Type.String(),
  enabled: Type.Boolean(),
  branch: Nullable(Type.String()),
  commit: Nullable(Type.String()),
  message: Nullable(Type.String()),
  env: Type.Record(Type.String(), Type.String()),
  missed: Type.String(),
  next_run_at: Nullable(Timestamp),
  last_run: Nullable(
    Type.Object(
      { id: Uuid, number: Nullable(Type.Integer()), state: Nullable(Type.String()) },
      { description: 'The last run it started' },
    ),
  ),
  last_fired_at: Nullable(Timestamp),
  last_outcome: Nullable(Type.String({ description: 'started, failed, skipped (or claimed while its run is being created)' })),
  last_error: Nullable(Type.String()),
  skipped_count: Type.Integer({ description: 'Occurrences skipped after downtime (policy skip)' }),
  created_by: Type.String(),
  created_at: Timestamp,
  updated_at: Timestamp,
  next_runs: Type.Optional(Type.Array(Timestamp, { description: 'The coming occurrences (?preview=N)' })),
});

const Firing = Type.Object({
  due_at: Timestamp,
  fired_at: Timestamp,
  outcome: Type.String({ description: 'started, failed (see error), skipped (missed), claimed (its run is being created)' }),
  missed: Type.Integer({ description: 'Missed occurrences this firing stands for' }),
  run_id: Nullable(Uuid),
  error: Nullable(Type.String()),
});

const SORTS = ['next_run_at', '-next_run_at', 'name', '-name', 'created_at', '-created_at'];
const ListQuery = Type.Object(
  {
    ...PageQuery,
    enabled: Type.Optional(Type.Boolean()),
    project_id: Type.Optional(Uuid),
    sort: Type.Optional(
      Type.Union(
        SORTS.map((s) => Type.Literal(s)),
        { default: 'next_run_at' },
      ),
    ),
  },
  { additionalProperties: false },
);
const ProjectListQuery = Type.Object(
  { ...PageQuery, enabled: ListQuery.properties.enabled, sort: ListQuery.properties.sort },
  { additionalProperties: false },
);

export function scheduleRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  // `schedule.*` events reach the `org` and `project:<id>` streams of those who may read projects.
  if (topicRegistry.permissionFor('schedule.created') === null) topicRegistry.registerEventTypes(['schedule.'], 'projects:read');
  const tags = ['schedules'];
  return async (app) => {
    app.post(
      '/projects/:id/schedules',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags,
          summary: 'Create a schedule: cron expression and time zone → runs of the project’s pipeline',
          description: 'A bad expression or time zone is a 400 naming the field and what is wrong.',
          params: IdParams,
          body: CreateBody,
          response: { 201: Schedule, ...errorResponses(403, 404, 409) },
        },
      },
      async (request, reply) =>
        reply.code(201).send(await createSchedule(deps, authOf(request), request.params.id, request.body)),
    );

    app.get(
      '/projects/:id/schedules',
      {
        config: { permission: 'projects:read' },
        schema: {
          tags,
          summary: 'A project’s schedules: filter, sort, cursor pages',
          params: IdParams,
          querystring: ProjectListQuery,
          response: { 200: Page(Schedule), ...errorResponses(403, 404) },
        },
      },
      async (request) => {
        const auth = authOf(request);
        await getProject(deps, auth, request.params.id);
        return listSchedulesPage(deps, auth, { ...request.query, project_id: request.params.id });
      },
    );

    app.get(
      '/schedules',
      {
        config: { permission: 'projects:read' },
        schema: {
          tags,
          summary: 'Schedules of the organization: filter by project and enabled, sort by next run, name or creation',
          querystring: ListQuery,
          response: { 200: Page(Schedule), ...errorResponses(403) },
        },
      },
      (request) => listSchedulesPage(deps, authOf(request), request.query),
    );

    app.get(
      '/schedules/:id',
      {
        config: { permission: 'projects:read' },
        schema: {
          tags,
          summary: 'A schedule, with its next occurrences when asked (?preview=N)',
          params: IdParams,
          querystring: Type.Object(
            { preview: Type.Optional(Type.Integer({ minimum: 0, maximum: 50, default: 0 })) },
            { additionalProperties: false },
          ),
          response: { 200: Schedule, ...errorResponses(403, 404) },
        },
      },
      (request) => getSchedule(deps, authOf(request), request.params.id, request.query.preview),
    );

    app.patch(
      '/schedules/:id',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags,
          summary: 'Change a schedule; a new expression, time zone or enabling counts the next run from now',
          params: IdParams,
          body: PatchBody,
          response: { 200: Schedule, ...errorResponses(403, 404, 409) },
        },
      },
      (request) => patchSchedule(deps, authOf(request), request.params.id, request.body),
    );

    app.delete(
      '/schedules/:id',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags,
          summary: 'Delete a schedule (runs it started stay)',
          params: IdParams,
          response: { 204: Type.Null(), ...errorResponses(403, 404) },
        },
      },
      async (request, reply) => {
        await deleteSchedule(deps, authOf(request), request.params.id);
        return reply.code(204).send(null);
      },
    );

    app.get(
      '/schedules/:id/firings',
      {
        config: { permission: 'projects:read' },
        schema: {
          tags,
          summary: 'What the scheduler did with each due occurrence, newest first',
          params: IdParams,
          querystring: Type.Object(PageQuery, { additionalProperties: false }),
          response: { 200: Page(Firing), ...errorResponses(403, 404) },
        },
      },
      (request) => listFiringsPage(deps, authOf(request), request.params.id, request.query),
    );
  };
}
