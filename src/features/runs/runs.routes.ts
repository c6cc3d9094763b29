import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, Page, PageQuery, Uuid, errorResponses } from '../../platform/http/schemas.js';
import { getProject } from '../projects/projects.service.js';
import { Completion, Run, RunStateName, RunSummary, TriggerBody } from './runs.schemas.js';
import {
  cancelRun,
  forceCompleteProject,
  forceCompleteRun,
  getRun,
  listRunsPage,
  projectCompletion,
  rerun,
  retryStep,
  triggerRun,
} from './runs.service.js';
import { listRunOutputs } from '../pipelines/handoff.service.js';
import { runTopicKind } from '../events/events.kinds.js';
import { registerTopicKind } from '../events/events.topics.js';
import { findRun } from './runs.queries.js';

const ListQuery = Type.Object(
  {
    ...PageQuery,
    state: Type.Optional(Type.Union([RunStateName, Type.Array(RunStateName, { maxItems: 5 })])),
    branch: Type.Optional(Type.String({ maxLength: 255 })),
    project_id: Type.Optional(Uuid),
  },
  { additionalProperties: false },
);
const StepParams = Type.Object({ id: Uuid, key: Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,100}$' }) });

/** `run:<id>` on the event streams: the run's `run.*` events and its jobs' transitions. */
const RUN_TOPIC = runTopicKind({
  permission: 'jobs:read',
  exists: async (db, orgId, id) => (await findRun(db, orgId, id)) !== undefined,
});

export function runRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    registerTopicKind(RUN_TOPIC);
    const tags = ['runs'];

    app.post(
      '/projects/:id/runs',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags,
          summary: "Trigger a run of the project's pipeline (branch, commit, message, env overrides)",
          params: IdParams,
          body: TriggerBody,
          response: { 201: Run, ...errorResponses(403, 404, 409) },
        },
      },
      async (request, reply) => {
        const auth = authOf(request);
        await getProject(deps, auth, request.params.id);
        return reply.code(201).send(await triggerRun(deps, auth, request.params.id, { ...request.body, trigger: 'api' }));
      },
    );

    app.get(
      '/projects/:id/runs',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags,
          summary: "A project's runs, newest first",
          params: IdParams,
          querystring: ListQuery,
          response: { 200: Page(RunSummary), ...errorResponses(403, 404) },
        },
      },
      async (request) => {
        const auth = authOf(request);
        await getProject(deps, auth, request.params.id);
        return listRunsPage(deps, auth, { ...request.query, project_id: request.params.id });
      },
    );

    app.get(
      '/projects/:id/completion',
      {
        config: { permission: 'projects:read' },
        schema: {
          tags,
          summary: 'Project completion: complete when no run of it is running or blocked',
          params: IdParams,
          response: { 200: Completion, ...errorResponses(403, 404) },
        },
      },
      async (request) => {
        const auth = authOf(request);
        await getProject(deps, auth, request.params.id);
        return projectCompletion(deps, auth, request.params.id);
      },
    );

    app.post(
      '/projects/:id/force-complete',
      {
        config: { permission: 'queue:admin' },
        schema: {
          tags,
          summary: 'Admins: force every unfinished run of the project complete (their unfinished steps are skipped)',
          params: IdParams,
          response: { 200: Completion, ...errorResponses(403, 404) },
        },
      },
      async (request) => {
        const auth = authOf(request);
        await getProject(deps, auth, request.params.id);
        return forceCompleteProject(deps, auth, request.params.id);
      },
    );

    app.get(
      '/runs',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags,
          summary: 'Runs, newest first',
          querystring: ListQuery,
          response: { 200: Page(RunSummary), ...errorResponses(403) },
        },
      },
      (request) => listRunsPage(deps, authOf(request), request.query),
    );

    app.get(
      '/runs/:id',
      {
        config: { permission: 'jobs:read' },
        schema: { tags, summary: 'A run with its steps', params: IdParams, response: { 200: Run, ...errorResponses(403, 404) } },
      },
      (request) => getRun(deps, authOf(request), request.params.id),
    );

    app.get(
      '/runs/:id/outputs',
      {
        // jobs:read, or the token of a job of this run (`cairn step output get`): see listRunOutputs.
        config: { permission: 'authenticated' },
        schema: {
          tags,
          summary: 'Hand-off outputs the run’s steps published (users with jobs:read, or a job token of this run)',
          params: IdParams,
          response: {
            200: Type.Object({
              items: Type.Array(Type.Object({ step_key: Type.String(), key: Type.String(), value: Type.String() })),
            }),
            ...errorResponses(403, 404),
          },
        },
      },
      (request) => listRunOutputs(deps, authOf(request), request.params.id),
    );

    const action = (summary: string, permission: 'jobs:write' | 'queue:admin', code = 200) => ({
      config: { permission },
      schema: { tags, summary, params: IdParams, response: { [code]: Run, ...errorResponses(403, 404, 409) } },
    });

    app.post('/runs/:id/cancel', action('Cancel a run: its unfinished steps stop', 'jobs:write'), (request) =>
      cancelRun(deps, authOf(request), request.params.id),
    );
    app.post(
      '/runs/:id/rerun',
      action('Run the same pipeline version again with the same context', 'jobs:write', 201),
      async (request, reply) => reply.code(201).send(await rerun(deps, authOf(request), request.params.id)),
    );
    app.post(
      '/runs/:id/force-complete',
      action('Admins: finish the run now; unfinished steps are skipped', 'queue:admin'),
      (request) => forceCompleteRun(deps, authOf(request), request.params.id),
    );
    app.post(
      '/runs/:id/steps/:key/retry',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags,
          summary: 'Retry a failed or canceled step (and what it skipped); reopens the run',
          params: StepParams,
          response: { 200: Run, ...errorResponses(403, 404, 409) },
        },
      },
      (request) => retryStep(deps, authOf(request), request.params.id, request.params.key),
    );
  };
}
