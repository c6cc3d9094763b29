import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, Page, errorResponses } from '../../platform/http/schemas.js';
import { approvalsTopicKind } from '../events/events.kinds.js';
import { registerTopicKind } from '../events/events.topics.js';
import { getProject } from '../projects/projects.service.js';
import { Approval, CancelBody, ListQuery, RequestBody, RespondBody } from './approvals.schemas.js';
import { cancelApproval, getApproval, listApprovalsPage, requestApproval, respondToApproval } from './approvals.service.js';

/** `approvals`: only what the subscriber may answer; one object, so registering twice is a no-op. */
const APPROVALS_TOPIC = approvalsTopicKind({ permission: 'jobs:read' });

/** A cancel's reason is optional, and so is the body that carries it. */
const bodyOptional = async (request: FastifyRequest) => {
  request.body ??= {};
};

export function approvalRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    registerTopicKind(APPROVALS_TOPIC);
    const tags = ['approvals'];

    app.post(
      '/approvals',
      {
        // People with jobs:write, or a job's shell with its job token (a bot asking a human).
        config: { permission: 'authenticated' },
        schema: {
          tags,
          summary: 'Ask people a question: options, input fields, who may answer, expiry',
          body: RequestBody,
          response: { 201: Approval, ...errorResponses(403, 404) },
        },
      },
      async (request, reply) => reply.code(201).send(await requestApproval(deps, authOf(request), request.body)),
    );

    app.get(
      '/approvals',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags,
          summary: 'List approvals: by project, run, deployment, state, or waiting for me; newest first',
          querystring: ListQuery,
          response: { 200: Page(Approval), ...errorResponses(403) },
        },
      },
      (request) => listApprovalsPage(deps, authOf(request), request.query),
    );

    app.get(
      '/projects/:id/approvals',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags,
          summary: "A project's approvals (seed 003's HITL requests of a project)",
          params: IdParams,
          querystring: ListQuery,
          response: { 200: Page(Approval), ...errorResponses(403, 404) },
        },
      },
      async (request) => {
        const auth = authOf(request);
        await getProject(deps, auth, request.params.id);
        return listApprovalsPage(deps, auth, { ...request.query, project_id: request.params.id });
      },
    );

    app.get(
      '/approvals/:id',
      {
        // jobs:read, or the job token of the job that asked.
        config: { permission: 'authenticated' },
        schema: {
          tags,
          summary: 'Get an approval, with its answer',
          params: IdParams,
          response: { 200: Approval, ...errorResponses(403, 404) },
        },
      },
      (request) => getApproval(deps, authOf(request), request.params.id),
    );

    app.post(
      '/approvals/:id/respond',
      {
        config: { permission: 'approvals:respond' },
        schema: {
          tags,
          summary: 'Answer: approve (with a choice and input) or reject; only those allowed may',
          params: IdParams,
          body: RespondBody,
          response: { 200: Approval, ...errorResponses(403, 404, 409) },
        },
      },
      (request) => respondToApproval(deps, authOf(request), request.params.id, request.body),
    );

    app.post(
      '/approvals/:id/cancel',
      {
        // jobs:write, or the job token of the job that asked.
        config: { permission: 'authenticated' },
        preValidation: bodyOptional,
        schema: {
          tags,
          summary: 'Withdraw a pending approval; what waited on it is canceled',
          params: IdParams,
          body: CancelBody,
          response: { 200: Approval, ...errorResponses(403, 404, 409) },
        },
      },
      (request) => cancelApproval(deps, authOf(request), request.params.id, request.body.reason),
    );
  };
}
