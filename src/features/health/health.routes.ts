import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { errorResponses } from '../../platform/http/schemas.js';
import { checkReadiness, describeComponents } from './health.service.js';

const Component = Type.Object({ name: Type.String(), ok: Type.Boolean(), detail: Type.String() });
const Readiness = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('degraded'), Type.Literal('not_ready')], {
    description: 'degraded (still 200): Redis is configured but unreachable; events stay on this replica',
  }),
  components: Type.Array(Component),
});
const Liveness = Type.Object({ status: Type.Literal('ok'), version: Type.String() });

// Probes are never rate limited: an orchestrator polling them must not be throttled.
const probe = { permission: 'public', rateLimit: false } as const;

export function healthRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    const liveness = { tags: ['health'], security: [], response: { 200: Liveness } };
    const live = async () => ({ status: 'ok' as const, version: deps.version });
    app.get('/health', { config: probe, schema: { ...liveness, summary: 'Liveness: the process answers' } }, live);
    app.get('/healthz', { config: probe, schema: { ...liveness, summary: 'Liveness (alias)' } }, live);
    app.get('/api/v1/health', { config: probe, schema: { ...liveness, summary: 'Liveness (seed alias)' } }, live);
    app.get('/api/v1/liveness', { config: probe, schema: { ...liveness, summary: 'Liveness (seed alias)' } }, live);

    const readiness = {
      tags: ['health'],
      security: [],
      // 503 is either this report (database down) or load shedding's problem body, sent
      // before the handler runs when the event loop lags: both must serialize.
      response: { 200: Readiness, 503: Type.Union([Readiness, errorResponses(503)[503]!]) },
    };
    const ready = async (_request: unknown, reply: { code(n: number): unknown }) => {
      const result = await checkReadiness(deps);
      reply.code(result.status === 'not_ready' ? 503 : 200);
      return result;
    };
    app.get(
      '/health/ready',
      { config: probe, schema: { ...readiness, summary: 'Readiness: database, migrations, Redis' } },
      ready,
    );
    app.get('/api/v1/readiness', { config: probe, schema: { ...readiness, summary: 'Readiness (seed alias)' } }, ready);

    const detailed = {
      config: { permission: 'system:read' as const },
      schema: {
        tags: ['health'],
        summary: 'Component status and versions (admins)',
        response: {
          200: Type.Object({
            status: Type.String(),
            version: Type.String(),
            node: Type.String(),
            uptime_seconds: Type.Number(),
            storage: Type.String(),
            components: Type.Array(Type.Intersect([Component, Type.Object({ version: Type.Optional(Type.String()) })])),
            memory: Type.Object({ rss_bytes: Type.Integer(), heap_used_bytes: Type.Integer() }),
          }),
          ...errorResponses(403),
        },
      },
    };
    app.get('/health/detailed', detailed, () => describeComponents(deps));
    app.get('/api/v1/health/detailed', detailed, () => describeComponents(deps));
  };
}
