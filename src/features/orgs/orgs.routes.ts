import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { ForbiddenError } from '../../platform/errors.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { Page, PageQuery, Uuid, errorResponses } from '../../platform/http/schemas.js';
import {
  addMember,
  changeMemberRole,
  createOrganization,
  getOrganization,
  listOrgMembers,
  removeMember,
} from './orgs.service.js';

const Organization = Type.Object({ id: Type.String(), slug: Type.String(), name: Type.String(), created_at: Type.String() });
const RoleSchema = Type.Union([Type.Literal('owner'), Type.Literal('admin'), Type.Literal('member'), Type.Literal('viewer')]);
const Member = Type.Object({
  user_id: Type.String(),
  email: Type.String(),
  name: Type.String(),
  role: RoleSchema,
  joined_at: Type.String(),
});
const Slug = Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$', description: 'Lowercase letters, digits and dashes' });
const UserParams = Type.Object({ userId: Uuid });

export function orgRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/org',
      {
        config: { permission: 'authenticated' },
        schema: {
          tags: ['organizations'],
          summary: 'Your current organization',
          response: { 200: Organization, ...errorResponses() },
        },
      },
      (request) => getOrganization(deps, authOf(request)),
    );

    app.post(
      '/orgs',
      {
        config: { permission: 'authenticated' },
        schema: {
          tags: ['organizations'],
          summary: 'Create an organization (you become its owner; log in to it to use it)',
          body: Type.Object({ slug: Slug, name: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
          response: { 201: Organization, ...errorResponses(403, 409) },
        },
      },
      async (request, reply) => {
        const auth = authOf(request);
        // A script's token acts inside one organization; founding another is a person's act.
        if (!auth.userId || auth.tokenId) throw new ForbiddenError('Create organizations from a user session, not an API token.');
        return reply.code(201).send(await createOrganization(deps, auth, { ...request.body, ownerUserId: auth.userId }));
      },
    );

    app.get(
      '/org/members',
      {
        config: { permission: 'members:read' },
        schema: {
          tags: ['organizations'],
          summary: 'List members of your organization',
          querystring: Type.Object(PageQuery, { additionalProperties: false }),
          response: { 200: Page(Member), ...errorResponses(403) },
        },
      },
      (request) => listOrgMembers(deps, authOf(request), request.query),
    );

    app.post(
      '/org/members',
      {
        config: { permission: 'members:write' },
        schema: {
          tags: ['organizations'],
          summary: 'Add a member (creates the user with an initial password if new)',
          body: Type.Object(
            {
              email: Type.String({ format: 'email', maxLength: 320 }),
              name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
              password: Type.Optional(Type.String({ minLength: 12, maxLength: 1024 })),
              role: RoleSchema,
            },
            { additionalProperties: false },
          ),
          response: { 201: Member, ...errorResponses(403, 409) },
        },
      },
      async (request, reply) => reply.code(201).send(await addMember(deps, authOf(request), request.body)),
    );

    app.patch(
      '/org/members/:userId',
      {
        config: { permission: 'members:write' },
        schema: {
          tags: ['organizations'],
          summary: "Change a member's role",
          params: UserParams,
          body: Type.Object({ role: RoleSchema }, { additionalProperties: false }),
          response: { 200: Member, ...errorResponses(403, 404, 409) },
        },
      },
      (request) => changeMemberRole(deps, authOf(request), request.params.userId, request.body.role),
    );

    app.delete(
      '/org/members/:userId',
      {
        config: { permission: 'members:write' },
        schema: {
          tags: ['organizations'],
          summary: 'Remove a member from your organization',
          params: UserParams,
          response: { 204: Type.Null(), ...errorResponses(403, 404, 409) },
        },
      },
      async (request, reply) => {
        await removeMember(deps, authOf(request), request.params.userId);
        return reply.code(204).send(null);
      },
    );
  };
}
