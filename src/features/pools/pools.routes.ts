import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { Page, PageQuery, Timestamp, errorResponses } from '../../platform/http/schemas.js';
import { createPool, deletePool, getPool, listPoolsPage, patchPool, rotateRegistrationToken } from './pools.service.js';

export const PoolName = Type.String({
  pattern: '^[a-z0-9][a-z0-9._:-]{0,62}$',
  description: 'e.g. linux, deploy-prod, role:reviewer',
});
const NameParams = Type.Object({ name: PoolName });
const Capacity = Type.Integer({ minimum: 0, maximum: 100_000 });

const PoolFields = {
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  description: Type.String(),
  desired_capacity: Type.Integer(),
  registration_token_prefix: Type.String({ description: 'The first characters of the current registration token' }),
  created_at: Timestamp,
  updated_at: Timestamp,
};
const Figures = Type.Object({
  agents: Type.Record(Type.String(), Type.Integer(), { description: 'Agents by status: idle, busy, paused, draining, lost' }),
  active_agents: Type.Integer(),
  slots: Type.Integer({ description: 'Concurrency of the agents taking work' }),
  queued: Type.Integer(),
  queued_by_priority: Type.Record(Type.String(), Type.Integer()),
  scheduled: Type.Integer({ description: 'Waiting for their time (delayed or backing off)' }),
  running: Type.Integer({ description: 'Claimed or running' }),
  oldest_queued_age_seconds: Type.Union([Type.Number(), Type.Null()]),
  agents_needed: Type.Integer({ description: 'Scaling signal: agents to add so every queued job could start now' }),
});
const Pool = Type.Object({ ...PoolFields, figures: Figures });
const PoolWithToken = Type.Object({
  ...PoolFields,
  registration_token: Type.String({ description: 'Shown once: agents register with it' }),
});
const CreateBody = Type.Object(
  {
    name: PoolName,
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    desired_capacity: Type.Optional(Capacity),
  },
  { additionalProperties: false },
);
const PatchBody = Type.Object(
  {
    name: Type.Optional(PoolName),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    desired_capacity: Type.Optional(Capacity),
  },
  { additionalProperties: false, minProperties: 1 },
);

export function poolRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['pools'];
    app.post(
      '/',
      {
        config: { permission: 'agents:write' },
        schema: {
          tags,
          summary: 'Create an agent pool (answers its registration token, once)',
          body: CreateBody,
          response: { 201: PoolWithToken, ...errorResponses(403, 409) },
        },
      },
      async (request, reply) => reply.code(201).send(await createPool(deps, authOf(request), request.body)),
    );

    app.get(
      '/',
      {
        config: { permission: 'agents:read' },
        schema: {
          tags,
          summary: 'List pools with their live figures',
          querystring: Type.Object(PageQuery, { additionalProperties: false }),
          response: { 200: Page(Pool), ...errorResponses(403) },
        },
      },
      (request) => listPoolsPage(deps, authOf(request), request.query),
    );

    app.get(
      '/:name',
      {
        config: { permission: 'agents:read' },
        schema: {
          tags,
          summary: 'Get a pool: agents by state, queue depth by priority, oldest queued age, scaling signal',
          params: NameParams,
          response: { 200: Pool, ...errorResponses(403, 404) },
        },
      },
      (request) => getPool(deps, authOf(request), request.params.name),
    );

    app.patch(
      '/:name',
      {
        config: { permission: 'agents:write' },
        schema: {
          tags,
          summary: 'Update a pool',
          params: NameParams,
          body: PatchBody,
          response: { 200: Pool, ...errorResponses(403, 404, 409) },
        },
      },
      (request) => patchPool(deps, authOf(request), request.params.name, request.body),
    );

    app.post(
      '/:name/scale',
      {
        config: { permission: 'agents:write' },
        schema: {
          tags,
          summary: 'Set the desired capacity (a signal for autoscalers)',
          params: NameParams,
          body: Type.Object({ desired_capacity: Capacity }, { additionalProperties: false }),
          response: { 200: Pool, ...errorResponses(403, 404) },
        },
      },
      (request) =>
        patchPool(deps, authOf(request), request.params.name, { desired_capacity: request.body.desired_capacity }, 'pool.scaled'),
    );

    app.post(
      '/:name/registration-token',
      {
        config: { permission: 'agents:write' },
        schema: {
          tags,
          summary: 'Rotate the registration token (the old one stops working at once; agents keep theirs)',
          params: NameParams,
          response: { 200: PoolWithToken, ...errorResponses(403, 404) },
        },
      },
      (request) => rotateRegistrationToken(deps, authOf(request), request.params.name),
    );

    app.delete(
      '/:name',
      {
        config: { permission: 'agents:write' },
        schema: {
          tags,
          summary: 'Delete a pool (refused while it has agents or unfinished jobs)',
          params: NameParams,
          response: { 204: Type.Null(), ...errorResponses(403, 404, 409) },
        },
      },
      async (request, reply) => {
        await deletePool(deps, authOf(request), request.params.name);
        return reply.code(204).send(null);
      },
    );
  };
}
