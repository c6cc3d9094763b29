import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, Page, PageQuery, Timestamp, errorResponses } from '../../platform/http/schemas.js';
import { PoolName } from '../pools/pools.routes.js';
import { activityLog, metrics, statusHistory } from './agents.activity.js';
import { deregisterAgent, getAgent, heartbeat, listAgentsPage, registerAgent, setStatusByUser } from './agents.service.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const Tags = Type.Record(Type.String({ pattern: '^[A-Za-z0-9._:/-]{1,64}$' }), Type.String({ maxLength: 256 }), {
  maxProperties: 64,
  description: 'e.g. {"os": "linux", "gpu": "true"}',
});
const Agent = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  pool: Type.String(),
  pool_id: Type.String({ format: 'uuid' }),
  hostname: Type.String(),
  version: Type.String(),
  os: Type.String(),
  tags: Type.Record(Type.String(), Type.String()),
  max_concurrency: Type.Integer(),
  status: Type.String({ description: 'idle, busy, paused, draining, lost or stopped' }),
  healthy: Type.Boolean({ description: 'Heard from recently and not lost or stopped' }),
  running_jobs: Type.Integer(),
  load: Type.Record(Type.String(), Type.Unknown()),
  registered_at: Timestamp,
  last_heartbeat_at: Timestamp,
  stopped_at: Nullable(Timestamp),
});
const RegisterBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    hostname: Type.Optional(Type.String({ maxLength: 255 })),
    version: Type.Optional(Type.String({ maxLength: 100 })),
    os: Type.Optional(Type.String({ maxLength: 100 })),
    tags: Type.Optional(Tags),
    max_concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
  },
  { additionalProperties: false },
);
const Registered = Type.Object({
  agent: Agent,
  token: Type.String({ description: "The agent's own token, shown once" }),
  heartbeat_interval_seconds: Type.Integer(),
  lease_seconds: Type.Integer(),
  lost_after_seconds: Type.Number(),
});
const ListQuery = Type.Object(
  {
    ...PageQuery,
    pool: Type.Optional(PoolName),
    status: Type.Optional(
      Type.Union(['idle', 'busy', 'active', 'paused', 'draining', 'lost', 'stopped'].map((s) => Type.Literal(s))),
    ),
    healthy: Type.Optional(Type.Boolean()),
    include_stopped: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const HeartbeatBody = Type.Object(
  {
    running_jobs: Type.Optional(Type.Array(Type.String({ format: 'uuid' }), { maxItems: 256, uniqueItems: true })),
    load: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 32 })),
    draining: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const HeartbeatAnswer = Type.Object({
  status: Type.String({ description: 'active, paused or draining: only active agents get new jobs' }),
  cancel: Type.Array(Type.String(), { description: 'Jobs to stop: someone canceled them' }),
  abandon: Type.Array(Type.String(), { description: 'Jobs to stop at once: their lease is no longer yours' }),
  heartbeat_interval_seconds: Type.Integer(),
  lease_seconds: Type.Integer(),
  lost_after_seconds: Type.Number({ description: 'Silent this long, the agent is lost and its jobs go elsewhere' }),
});
const PageOnly = Type.Object(PageQuery, { additionalProperties: false });

export function agentRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['agents'];
    const list = {
      config: { permission: 'agents:read' as const },
      schema: {
        tags,
        summary: 'List agents',
        querystring: ListQuery,
        response: { 200: Page(Agent), ...errorResponses(403, 404) },
      },
    };

    app.post(
      '/',
      {
        config: { permission: 'agent:register' },
        schema: {
          tags: [...tags, 'agent protocol'],
          summary: "Register an agent (authenticate with the pool's registration token)",
          body: RegisterBody,
          response: { 201: Registered, ...errorResponses(403) },
        },
      },
      async (request, reply) => reply.code(201).send(await registerAgent(deps, authOf(request), request.body)),
    );

    app.get('/', list, (request) => listAgentsPage(deps, authOf(request), request.query));

    app.get(
      '/healthy',
      { ...list, schema: { ...list.schema, summary: 'List healthy agents (recent heartbeat, not lost or stopped)' } },
      (request) => listAgentsPage(deps, authOf(request), { ...request.query, healthy: true }),
    );

    app.get(
      '/:id',
      {
        config: { permission: 'agents:read' },
        schema: { tags, summary: 'Get an agent', params: IdParams, response: { 200: Agent, ...errorResponses(403, 404) } },
      },
      (request) => getAgent(deps, authOf(request), request.params.id),
    );

    app.patch(
      '/:id',
      {
        config: { permission: 'agents:write' },
        schema: {
          tags,
          summary: 'Pause, resume (active) or drain an agent',
          params: IdParams,
          body: Type.Object(
            { status: Type.Union([Type.Literal('paused'), Type.Literal('active'), Type.Literal('draining')]) },
            { additionalProperties: false },
          ),
          response: { 200: Agent, ...errorResponses(403, 404) },
        },
      },
      (request) => setStatusByUser(deps, authOf(request), request.params.id, request.body.status),
    );

    app.delete(
      '/:id',
      {
        config: { permission: 'authenticated' },
        schema: {
          tags,
          summary: 'Deregister an agent (admins, or the agent itself); its running jobs are retried elsewhere',
          params: IdParams,
          response: { 204: Type.Null(), ...errorResponses(403, 404) },
        },
      },
      async (request, reply) => {
        await deregisterAgent(deps, authOf(request), request.params.id);
        return reply.code(204).send(null);
      },
    );

    app.post(
      '/:id/heartbeat',
      {
        config: { permission: 'agent:work' },
        schema: {
          tags: [...tags, 'agent protocol'],
          summary: 'Heartbeat (agent token): renews the leases of its running jobs, answers what to cancel or abandon',
          params: IdParams,
          body: HeartbeatBody,
          response: { 200: HeartbeatAnswer, ...errorResponses(403, 404) },
        },
      },
      (request) => heartbeat(deps, authOf(request), request.params.id, request.body),
    );

    app.get(
      '/:id/history',
      {
        config: { permission: 'agents:read' },
        schema: {
          tags,
          summary: 'Status history of an agent, newest first',
          params: IdParams,
          querystring: PageOnly,
          response: {
            200: Page(Type.Object({ from: Nullable(Type.String()), to: Type.String(), reason: Type.String(), at: Timestamp })),
            ...errorResponses(403, 404),
          },
        },
      },
      (request) => statusHistory(deps, authOf(request), request.params.id, request.query),
    );

    app.get(
      '/:id/activity',
      {
        config: { permission: 'agents:read' },
        schema: {
          tags,
          summary: 'What an agent ran, when, and how each attempt ended, newest first',
          params: IdParams,
          querystring: PageOnly,
          response: {
            200: Page(
              Type.Object({
                job_id: Type.String(),
                job_name: Type.String(),
                attempt: Type.Integer(),
                outcome: Type.String(),
                exit_status: Type.Union([Type.Integer(), Type.Null()]),
                reason: Nullable(Type.String()),
                claimed_at: Nullable(Timestamp),
                started_at: Nullable(Timestamp),
                finished_at: Timestamp,
                duration_seconds: Type.Number(),
              }),
            ),
            ...errorResponses(403, 404),
          },
        },
      },
      (request) => activityLog(deps, authOf(request), request.params.id, request.query),
    );

    app.get(
      '/:id/metrics',
      {
        config: { permission: 'agents:read' },
        schema: {
          tags,
          summary: 'Jobs done, failure rate and busy time of an agent',
          params: IdParams,
          querystring: Type.Object(
            { window_hours: Type.Optional(Type.Integer({ minimum: 1, maximum: 24 * 90, default: 24 })) },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              window_hours: Type.Integer(),
              attempts: Type.Integer(),
              completed: Type.Integer(),
              failed: Type.Integer(),
              failure_rate: Type.Number(),
              busy_seconds: Type.Number(),
              utilization: Type.Number(),
              first_finished_at: Nullable(Timestamp),
              last_finished_at: Nullable(Timestamp),
            }),
            ...errorResponses(403, 404),
          },
        },
      },
      (request) => metrics(deps, authOf(request), request.params.id, request.query.window_hours ?? 24),
    );
  };
}
