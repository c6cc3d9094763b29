import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

/** OpenAPI 3.1 generated from the route schemas (never hand-written), and a docs page. */
export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Cairn API',
        version,
        description:
          'Control plane for software delivery and agent work. Errors are RFC 9457 application/problem+json. ' +
          'Authenticate with `Authorization: Bearer <access token or API token>`.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'Access JWT from /api/v1/auth/login, or an API token.' },
        },
      },
      security: [{ bearer: [] }],
      tags: [
        { name: 'health', description: 'Liveness, readiness and component status' },
        { name: 'auth', description: 'Login, sessions, refresh and logout' },
        { name: 'organizations', description: 'Your organization and its members' },
        { name: 'tokens', description: 'API tokens for scripts' },
        { name: 'projects', description: 'Projects' },
        { name: 'audit', description: 'Audit trail' },
        { name: 'ledger', description: 'Tamper-evident transparency log' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { persistAuthorization: true } });
  app.get('/openapi.json', { config: { permission: 'public' }, schema: { hide: true } }, async () => app.swagger());
}
