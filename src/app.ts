// buildApp(deps) registers plugins and features and returns the Fastify instance. It never
// listens: server.ts does that, and tests call app.inject() on the same instance.
import { randomUUID } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { artifactRoutes } from './features/artifacts/artifacts.routes.js';
import { auditRoutes } from './features/audit/audit.routes.js';
import { authRoutes } from './features/auth/auth.routes.js';
import { tokenRoutes } from './features/auth/tokens.routes.js';
import { eventRoutes } from './features/events/events.routes.js';
import { healthRoutes } from './features/health/health.routes.js';
import { orgRoutes } from './features/orgs/orgs.routes.js';
import { projectRoutes } from './features/projects/projects.routes.js';
import { ledgerRoutes } from './features/ledger/ledger.routes.js';
import { logRoutes } from './features/logs/logs.routes.js';
import { agentRoutes } from './features/agents/agents.routes.js';
import { approvalRoutes } from './features/approvals/approvals.routes.js';
import { deploymentRoutes } from './features/deployments/deployments.routes.js';
import { dashboardRoutes } from './features/dashboard/dashboard.routes.js';
import { poolRoutes } from './features/pools/pools.routes.js';
import { jobRoutes } from './features/queue/jobs.routes.js';
import { queueRoutes } from './features/queue/queue.routes.js';
import { runRoutes } from './features/runs/runs.routes.js';
import { handoffRoutes } from './features/pipelines/handoff.routes.js';
import { pipelineRoutes } from './features/pipelines/pipelines.routes.js';
import { runArtifactRoutes } from './features/artifacts/run-artifacts.routes.js';
import { scheduleRoutes } from './features/schedules/schedules.routes.js';
import { webhookRoutes } from './features/webhooks/webhooks.routes.js';
import { bundleRoutes } from './features/artifacts/bundles.routes.js';
import type { AppDeps } from './platform/deps.js';
import { BadRequestError } from './platform/errors.js';
import { registerAuthGuard } from './platform/http/auth-guard.js';
import { registerHttpMetrics } from './platform/http/metrics.js';
import { registerOpenApi } from './platform/http/openapi.js';
import { registerProblemHandlers, sendProblem } from './platform/http/problem.js';
import { registerSecurity } from './platform/http/security.js';

const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

export type App = FastifyInstance;

// Bodies are validated strictly (a number is not a string, unknown fields are refused);
// query strings and path parameters arrive as text and are coerced.
function validators() {
  const options = { allErrors: true, strict: false, removeAdditional: false, useDefaults: true } as const;
  const strict = addFormats(new Ajv({ ...options, coerceTypes: false }));
  const coercing = addFormats(new Ajv({ ...options, coerceTypes: 'array' }));
  return ({ schema, httpPart }: { schema: object; httpPart?: string }) =>
    (httpPart === 'body' ? strict : coercing).compile(schema);
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export async function buildApp(deps: AppDeps, opts: { logger?: FastifyBaseLogger | boolean } = {}): Promise<App> {
  const { config } = deps;
  const app = Fastify({
    loggerInstance: typeof opts.logger === 'object' ? opts.logger : undefined,
    logger: typeof opts.logger === 'object' ? undefined : opts.logger === false ? false : { level: config.logLevel },
    requestIdHeader: false,
    logController: new LogController({ requestIdLogLabel: 'request_id' }),
    // Bad URLs and over-long path parameters are rejected by the router itself; answer them
    // in the same problem format as everything else.
    frameworkErrors: (error, request, reply) => {
      const tooLong = error.code === 'FST_ERR_MAX_PARAM_LENGTH';
      void sendProblem(reply, request, {
        status: tooLong ? 414 : 400,
        code: tooLong ? 'uri_too_long' : 'bad_url',
        title: tooLong ? 'URI too long' : 'Bad request',
        detail: error.message,
      });
    },
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy,
    routerOptions: { maxParamLength: 200, ignoreTrailingSlash: true },
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validators());
  registerProblemHandlers(app);

  // PostgreSQL text cannot hold NUL; refuse it at the door rather than fail in the database.
  const jsonParser = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (String(body).includes('\\u0000'))
      return done(new BadRequestError('JSON strings must not contain NUL (\\u0000).', 'malformed_json'));
    void jsonParser(request, String(body), done);
  });
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (/%00/.test(request.url)) throw new BadRequestError('The URL must not contain NUL (%00).', 'bad_url');
  });

  registerAuthGuard(app, deps.authenticator);
  await registerSecurity(app, config, deps.redis);
  await registerOpenApi(app, deps.version);
  registerHttpMetrics(app, deps.metrics);

  await app.register(healthRoutes(deps));
  await app.register(authRoutes(deps), { prefix: '/api/v1/auth' });
  await app.register(orgRoutes(deps), { prefix: '/api/v1' });
  await app.register(tokenRoutes(deps), { prefix: '/api/v1/tokens' });
  await app.register(projectRoutes(deps), { prefix: '/api/v1/projects' });
  await app.register(auditRoutes(deps), { prefix: '/api/v1/audit' });
  await app.register(ledgerRoutes(deps), { prefix: '/api/v1/ledger' });
  await app.register(eventRoutes(deps), { prefix: '/api/v1' });
  await app.register(poolRoutes(deps), { prefix: '/api/v1/pools' });
  await app.register(agentRoutes(deps), { prefix: '/api/v1/agents' });
  await app.register(jobRoutes(deps), { prefix: '/api/v1/jobs' });
  await app.register(queueRoutes(deps), { prefix: '/api/v1/queue' });
  await app.register(logRoutes(deps), { prefix: '/api/v1' });
  await app.register(artifactRoutes(deps), { prefix: '/api/v1' });
  await app.register(dashboardRoutes(deps), { prefix: '/api/v1/dashboard' });
  await app.register(runRoutes(deps), { prefix: '/api/v1' });
  await app.register(pipelineRoutes(deps), { prefix: '/api/v1' });
  await app.register(handoffRoutes(deps), { prefix: '/api/v1' });
  await app.register(runArtifactRoutes(deps), { prefix: '/api/v1' });
  await app.register(approvalRoutes(deps), { prefix: '/api/v1' });
  await app.register(deploymentRoutes(deps), { prefix: '/api/v1' });
  await app.register(scheduleRoutes(deps), { prefix: '/api/v1' });
  await app.register(webhookRoutes(deps), { prefix: '/api/v1' });
  await app.register(bundleRoutes(deps), { prefix: '/api/v1' });

  await app.ready();
  return app;
}
