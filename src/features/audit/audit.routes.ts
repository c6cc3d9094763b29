import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, Page, PageQuery, Timestamp, Uuid, errorResponses } from '../../platform/http/schemas.js';
import { getAuditEvent, listAudit } from './audit.service.js';

const AuditEvent = Type.Object({
  id: Type.String(),
  org_id: Type.String(),
  occurred_at: Type.String({ format: 'date-time' }),
  actor: Type.Object({ type: Type.String(), id: Type.String(), label: Type.String() }),
  action: Type.String(),
  resource: Type.Object({ type: Type.String(), id: Type.String() }),
  project_id: Type.Union([Type.String(), Type.Null()]),
  request_id: Type.Union([Type.String(), Type.Null()]),
  client_ip: Type.Union([Type.String(), Type.Null()]),
  payload: Type.Record(Type.String(), Type.Unknown()),
});

const Name = Type.String({ minLength: 1, maxLength: 200 });
const Filters = {
  actor_id: Type.Optional(Name),
  action: Type.Optional(
    Type.String({ pattern: '^[a-z0-9_.]+(\\.\\*)?$', maxLength: 200, description: 'Exact, or a prefix like project.*' }),
  ),
  since: Type.Optional(Timestamp),
  until: Type.Optional(Timestamp),
};
const ListQuery = Type.Object(
  {
    ...PageQuery,
    ...Filters,
    resource_type: Type.Optional(Name),
    resource_id: Type.Optional(Name),
    project_id: Type.Optional(Uuid),
  },
  { additionalProperties: false },
);

export function auditRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    const base = { tags: ['audit'], response: { 200: Page(AuditEvent), ...errorResponses(403) } };
    app.get(
      '/',
      {
        config: { permission: 'audit:read' },
        schema: { ...base, summary: 'List audit events (newest first) with filters', querystring: ListQuery },
      },
      (request) => listAudit(deps, authOf(request), request.query),
    );

    app.get(
      '/projects/:id',
      {
        config: { permission: 'audit:read' },
        schema: {
          ...base,
          summary: 'Audit events of one project',
          params: IdParams,
          querystring: Type.Object({ ...PageQuery, ...Filters }, { additionalProperties: false }),
        },
      },
      (request) => listAudit(deps, authOf(request), { ...request.query, project_id: request.params.id }),
    );

    app.get(
      '/resources/:type/:resourceId',
      {
        config: { permission: 'audit:read' },
        schema: {
          ...base,
          summary: 'Audit events of one resource (e.g. /resources/project/<id>)',
          params: Type.Object({ type: Type.String({ pattern: '^[a-z_]{1,64}$' }), resourceId: Name }),
          querystring: Type.Object({ ...PageQuery, ...Filters }, { additionalProperties: false }),
        },
      },
      (request) =>
        listAudit(deps, authOf(request), {
          ...request.query,
          resource_type: request.params.type,
          resource_id: request.params.resourceId,
        }),
    );

    app.get(
      '/events/:id',
      {
        config: { permission: 'audit:read' },
        schema: {
          tags: ['audit'],
          summary: 'Get one audit event',
          params: IdParams,
          response: { 200: AuditEvent, ...errorResponses(403, 404) },
        },
      },
      (request) => getAuditEvent(deps, authOf(request), request.params.id),
    );
  };
}
