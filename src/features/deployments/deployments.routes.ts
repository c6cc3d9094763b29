import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, Page, errorResponses } from '../../platform/http/schemas.js';
import type { TopicKind } from '../events/events.topics.js';
import { registerTopicKind } from '../events/events.topics.js';
import {
  CancelBody,
  CreateBody,
  Current,
  CurrentQuery,
  Deployment,
  Environment,
  EnvironmentBody,
  EnvironmentParams,
  ListQuery,
  PromoteBody,
} from './deployments.schemas.js';
import {
  cancelDeployment,
  createDeployment,
  currentVersions,
  getDeployment,
  listDeploymentsPage,
  promoteDeployment,
  rollbackDeployment,
} from './deployments.service.js';
import { findDeployment } from './deployments.queries.js';
import { listProjectEnvironments, putEnvironment, removeEnvironment } from './environments.service.js';

/** `deployment:<id>`: a deployment's events; environment changes are owned here too. */
const DEPLOYMENT_TOPIC: TopicKind = {
  name: 'deployment',
  permission: 'jobs:read',
  exists: async (db, orgId, id) => (await findDeployment(db, orgId, id)) !== undefined,
  owns: ['deployment.', 'environment.'],
};

/** A cancel's reason is optional, and so is the body that carries it. */
const bodyOptional = async (request: FastifyRequest) => {
  request.body ??= {};
};

export function deploymentRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    registerTopicKind(DEPLOYMENT_TOPIC);
    const tags = ['deployments'];

    app.post(
      '/deployments',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags,
          summary: "Deploy a version of a service to an environment, under the environment's rules",
          body: CreateBody,
          response: { 201: Deployment, ...errorResponses(403, 409) },
        },
      },
      async (request, reply) => reply.code(201).send(await createDeployment(deps, authOf(request), request.body)),
    );

    app.get(
      '/deployments',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags,
          summary: 'List deployments: by project, service, environment, state; newest first',
          querystring: ListQuery,
          response: { 200: Page(Deployment), ...errorResponses(403) },
        },
      },
      (request) => listDeploymentsPage(deps, authOf(request), request.query),
    );

    app.get(
      '/deployments/current',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags,
          summary: 'What each environment of a project runs now, per service (its last succeeded deployment)',
          querystring: CurrentQuery,
          response: { 200: Current, ...errorResponses(403, 404) },
        },
      },
      (request) => currentVersions(deps, authOf(request), request.query.project_id, request.query.service),
    );

    app.get(
      '/deployments/:id',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags,
          summary: 'Get a deployment',
          params: IdParams,
          response: { 200: Deployment, ...errorResponses(403, 404) },
        },
      },
      (request) => getDeployment(deps, authOf(request), request.params.id),
    );

    const responses = (code: number) => ({ [code]: Deployment, ...errorResponses(403, 404, 409) });

    app.post(
      '/deployments/:id/promote',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags,
          summary:
            'Deploy the same version to another environment (default: the next one); refused unless it passed the one required',
          params: IdParams,
          body: PromoteBody,
          response: responses(201),
        },
      },
      async (request, reply) =>
        reply.code(201).send(await promoteDeployment(deps, authOf(request), request.params.id, request.body)),
    );

    app.post(
      '/deployments/:id/rollback',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags,
          summary: 'Redeploy, as a new deployment, the last version that succeeded in this environment before this one',
          params: IdParams,
          response: responses(201),
        },
      },
      async (request, reply) => reply.code(201).send(await rollbackDeployment(deps, authOf(request), request.params.id)),
    );

    app.post(
      '/deployments/:id/cancel',
      {
        config: { permission: 'jobs:write' },
        preValidation: bodyOptional,
        schema: {
          tags,
          summary: 'Cancel a deployment: before it deploys at once; while deploying, its job is stopped',
          params: IdParams,
          body: CancelBody,
          response: responses(200),
        },
      },
      (request) => cancelDeployment(deps, authOf(request), request.params.id, request.body?.reason),
    );

    app.get(
      '/projects/:id/environments',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags,
          summary: "A project's environments and their rules (defaults: staging, and production after staging with approval)",
          params: IdParams,
          response: { 200: Type.Object({ items: Type.Array(Environment) }), ...errorResponses(403, 404) },
        },
      },
      (request) => listProjectEnvironments(deps, authOf(request), request.params.id),
    );

    app.put(
      '/projects/:id/environments/:environment',
      {
        config: { permission: 'environments:write' },
        schema: {
          tags,
          summary: 'Admins: create or replace an environment (approval, who approves, required environment, pool, commands)',
          params: EnvironmentParams,
          body: EnvironmentBody,
          response: { 200: Environment, ...errorResponses(403, 404) },
        },
      },
      (request) => putEnvironment(deps, authOf(request), request.params.id, request.params.environment, request.body),
    );

    app.delete(
      '/projects/:id/environments/:environment',
      {
        config: { permission: 'environments:write' },
        schema: {
          tags,
          summary: 'Admins: remove an environment (its deployments stay in the history)',
          params: EnvironmentParams,
          response: { 204: Type.Null(), ...errorResponses(403, 404, 409) },
        },
      },
      async (request, reply) => {
        await removeEnvironment(deps, authOf(request), request.params.id, request.params.environment);
        return reply.code(204).send(null);
      },
    );
  };
}
