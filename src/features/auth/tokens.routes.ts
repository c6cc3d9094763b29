import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PERMISSIONS } from '../../platform/auth.js';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, errorResponses } from '../../platform/http/schemas.js';
import { createApiToken, listApiTokens, revokeToken } from './tokens.service.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const ApiToken = Type.Object({
  id: Type.String(),
  name: Type.String(),
  prefix: Type.String({ description: 'First characters, to recognize the token' }),
  scopes: Type.Array(Type.String()),
  created_at: Type.String(),
  expires_at: Nullable(Type.String()),
  last_used_at: Nullable(Type.String()),
  revoked_at: Nullable(Type.String()),
});

export function tokenRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/',
      {
        config: { permission: 'tokens:write' },
        schema: {
          tags: ['tokens'],
          summary: 'Create an API token (the secret is shown once)',
          body: Type.Object(
            {
              name: Type.String({ minLength: 1, maxLength: 100 }),
              scopes: Type.Array(Type.Union(PERMISSIONS.map((p) => Type.Literal(p))), {
                minItems: 1,
                maxItems: PERMISSIONS.length,
              }),
              expires_in_days: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 3650 }), Type.Null()])),
            },
            { additionalProperties: false },
          ),
          response: { 201: Type.Intersect([ApiToken, Type.Object({ token: Type.String() })]), ...errorResponses(403) },
        },
      },
      async (request, reply) => reply.code(201).send(await createApiToken(deps, authOf(request), request.body)),
    );

    app.get(
      '/',
      {
        config: { permission: 'authenticated' },
        schema: {
          tags: ['tokens'],
          summary: 'List your API tokens',
          response: { 200: Type.Object({ items: Type.Array(ApiToken) }), ...errorResponses() },
        },
      },
      async (request) => ({ items: await listApiTokens(deps, authOf(request)) }),
    );

    app.delete(
      '/:id',
      {
        config: { permission: 'tokens:write' },
        schema: {
          tags: ['tokens'],
          summary: 'Revoke an API token',
          params: IdParams,
          response: { 204: Type.Null(), ...errorResponses(403, 404) },
        },
      },
      async (request, reply) => {
        await revokeToken(deps, authOf(request), request.params.id);
        return reply.code(204).send(null);
      },
    );
  };
}
