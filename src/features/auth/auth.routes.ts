import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { errorResponses } from '../../platform/http/schemas.js';
import { describeSession, login, logout, refresh } from './auth.service.js';

const TokenPair = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires' }),
  refresh_token: Type.String({ description: 'Single use: each refresh returns a new one' }),
  session_id: Type.String(),
  organization_id: Type.String(),
});

const Session = Type.Object({
  valid: Type.Literal(true),
  kind: Type.Union([
    Type.Literal('session'),
    Type.Literal('api_token'),
    Type.Literal('agent'),
    Type.Literal('registration'),
    Type.Literal('job'),
  ]),
  user_id: Type.Union([Type.String(), Type.Null()]),
  actor: Type.String(),
  organization_id: Type.String(),
  role: Type.Union([Type.String(), Type.Null()], { description: 'Null for agents and pool registration tokens' }),
  permissions: Type.Array(Type.String()),
  session: Type.Union([
    Type.Object({ id: Type.String(), created_at: Type.String(), last_used_at: Type.String(), expires_at: Type.String() }),
    Type.Null(),
  ]),
  token_id: Type.Union([Type.String(), Type.Null()]),
});

export function authRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/login',
      {
        config: { permission: 'public' },
        schema: {
          tags: ['auth'],
          summary: 'Log in: create a session (access token + rotating refresh token)',
          security: [],
          body: Type.Object(
            {
              email: Type.String({ minLength: 3, maxLength: 320 }),
              password: Type.String({ minLength: 1, maxLength: 1024 }),
              organization: Type.Optional(
                Type.String({ minLength: 1, maxLength: 100, description: 'Slug or id; default: your first' }),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 200: TokenPair, ...errorResponses() },
        },
      },
      (request) =>
        login(deps, request.body, {
          requestId: request.id,
          clientIp: request.ip,
          userAgent: request.headers['user-agent'] ?? null,
        }),
    );

    app.post(
      '/refresh',
      {
        config: { permission: 'public' },
        schema: {
          tags: ['auth'],
          summary: 'Exchange a refresh token for a new token pair (reuse revokes the session)',
          security: [],
          body: Type.Object({ refresh_token: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
          response: { 200: TokenPair, ...errorResponses() },
        },
      },
      (request) => refresh(deps, request.body.refresh_token, { requestId: request.id, clientIp: request.ip }),
    );

    app.post(
      '/logout',
      {
        config: { permission: 'authenticated' },
        schema: {
          tags: ['auth'],
          summary: 'Log out: revoke the current session and all its tokens',
          response: { 204: Type.Null(), ...errorResponses(404) },
        },
      },
      async (request, reply) => {
        await logout(deps, authOf(request));
        return reply.code(204).send(null);
      },
    );

    app.get(
      '/session',
      {
        config: { permission: 'authenticated' },
        schema: {
          tags: ['auth'],
          summary: 'Validate the credentials and describe the current session or token',
          response: { 200: Session, ...errorResponses() },
        },
      },
      (request) => describeSession(deps, authOf(request)),
    );
  };
}
