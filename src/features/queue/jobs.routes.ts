import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { BadRequestError } from '../../platform/errors.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, Page, PageQuery, Uuid, errorResponses } from '../../platform/http/schemas.js';
import { enqueueJobs } from './enqueue.service.js';
import { cancelJob, changePriority, getJob, listJobsPage, redriveJob } from './jobs.service.js';
import { CompleteBody, EnqueueBody, FailBody, Job, JobStateName, PriorityName, StartBody } from './queue.schemas.js';
import { applyReport, renewLease } from './reports.service.js';

const ListQuery = Type.Object(
  {
    ...PageQuery,
    state: Type.Optional(Type.Union([JobStateName, Type.Array(JobStateName, { maxItems: 10 })])),
    pool: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9._:-]{0,62}$' })),
    project_id: Type.Optional(Uuid),
    run_id: Type.Optional(Uuid),
    agent_id: Type.Optional(Uuid),
    priority: Type.Optional(PriorityName),
  },
  { additionalProperties: false },
);
const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
});

export function jobRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['jobs'];
    const agentTags = ['jobs', 'agent protocol'];

    app.post(
      '/',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags,
          summary: 'Enqueue a job (201; 200 with the earlier job when its idempotency key was seen)',
          headers: IdempotencyHeaders,
          body: EnqueueBody,
          response: { 200: Job, 201: Job, ...errorResponses(403, 409) },
        },
      },
      async (request, reply) => {
        const header = request.headers['idempotency-key'];
        const key = request.body.idempotency_key;
        if (header && key && header !== key) {
          throw new BadRequestError('The Idempotency-Key header and idempotency_key differ.', 'conflicting_idempotency_key');
        }
        const body = header ? { ...request.body, idempotency_key: header } : request.body;
        const { jobs, created } = await enqueueJobs(deps, authOf(request), [body]);
        return reply.code(created[0] ? 201 : 200).send(jobs[0]!);
      },
    );

    app.post(
      '/batch',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags,
          summary: 'Enqueue many jobs at once, atomically (each may carry its own idempotency key)',
          body: Type.Object({ jobs: Type.Array(EnqueueBody, { minItems: 1, maxItems: 1000 }) }, { additionalProperties: false }),
          response: {
            201: Type.Object({ jobs: Type.Array(Job), created: Type.Array(Type.Boolean()) }),
            ...errorResponses(403, 409),
          },
        },
      },
      async (request, reply) => reply.code(201).send(await enqueueJobs(deps, authOf(request), request.body.jobs)),
    );

    app.get(
      '/',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags,
          summary: 'List jobs, newest first: filter by state (e.g. running), pool, project, run, agent, priority',
          querystring: ListQuery,
          response: { 200: Page(Job), ...errorResponses(403, 404) },
        },
      },
      (request) => listJobsPage(deps, authOf(request), request.query),
    );

    app.get(
      '/:id',
      {
        config: { permission: 'jobs:read' },
        schema: { tags, summary: 'Get a job', params: IdParams, response: { 200: Job, ...errorResponses(403, 404) } },
      },
      (request) => getJob(deps, authOf(request), request.params.id),
    );

    app.patch(
      '/:id',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags,
          summary: 'Change the priority of a job no agent has claimed yet',
          params: IdParams,
          body: Type.Object({ priority: PriorityName }, { additionalProperties: false }),
          response: { 200: Job, ...errorResponses(403, 404, 409) },
        },
      },
      (request) => changePriority(deps, authOf(request), request.params.id, request.body.priority),
    );

    app.post(
      '/:id/cancel',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags,
          summary: 'Cancel a job (at once unless running; a running job’s agent is told to stop it)',
          params: IdParams,
          response: { 200: Job, ...errorResponses(403, 404, 409) },
        },
      },
      (request) => cancelJob(deps, authOf(request), request.params.id),
    );

    app.post(
      '/:id/redrive',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags,
          summary: 'Send a dead-lettered, failed or timed-out job back to the queue with a fresh attempt budget',
          params: IdParams,
          response: { 200: Job, ...errorResponses(403, 404, 409) },
        },
      },
      (request) => redriveJob(deps, authOf(request), request.params.id),
    );

    const agentCall = (summary: string, body: typeof StartBody | typeof CompleteBody | typeof FailBody) => ({
      config: { permission: 'agent:work' as const },
      schema: { tags: agentTags, summary, params: IdParams, body, response: { 200: Job, ...errorResponses(403, 404, 409) } },
    });

    app.post('/:id/start', agentCall('Start a claimed job (agent token, fenced by the lease)', StartBody), (request) =>
      applyReport(deps, authOf(request), { job_id: request.params.id, lease_token: request.body.lease_token, action: 'start' }),
    );

    app.post(
      '/:id/complete',
      agentCall('Complete a job with its exit status and outputs (non-zero exit status is a failure)', CompleteBody),
      (request) => applyReport(deps, authOf(request), { job_id: request.params.id, action: 'complete', ...request.body }),
    );

    app.post('/:id/fail', agentCall('Fail a job with a reason (its retry rules decide what follows)', FailBody), (request) =>
      applyReport(deps, authOf(request), { job_id: request.params.id, action: 'fail', ...request.body }),
    );

    app.post(
      '/:id/heartbeat',
      {
        config: { permission: 'agent:work' },
        schema: {
          tags: agentTags,
          summary: 'Renew one job’s lease (agent token); says whether a cancel was requested',
          params: IdParams,
          body: StartBody,
          response: {
            200: Type.Object({ lease_expires_at: Type.String(), cancel_requested: Type.Boolean() }),
            ...errorResponses(403, 404, 409),
          },
        },
      },
      (request) => renewLease(deps, authOf(request), request.params.id, request.body.lease_token),
    );
  };
}
