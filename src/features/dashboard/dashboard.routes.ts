import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { errorResponses } from '../../platform/http/schemas.js';
import { deploymentSummary } from '../deployments/deployments.service.js';
import { dashboardSummary } from '../queue/stats.service.js';

const Summary = Type.Object({
  total_jobs: Type.Integer({ description: 'In flight plus finished within the retained history' }),
  jobs_queued: Type.Integer(),
  jobs_running: Type.Integer(),
  jobs_completed: Type.Integer(),
  jobs_failed: Type.Integer({ description: 'failed, dead-lettered and timed out' }),
  jobs_canceled: Type.Integer(),
  jobs_by_state: Type.Record(Type.String(), Type.Integer()),
  total_deployments: Type.Integer(),
  deployments_active: Type.Integer({ description: 'pending, awaiting approval or deploying' }),
  deployments_staging: Type.Integer({ description: 'Versions that succeeded in staging and are not yet in production' }),
  deployments_failed: Type.Integer(),
  deployments_by_state: Type.Record(Type.String(), Type.Integer()),
});

export function dashboardRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/summary',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags: ['dashboard'],
          summary: 'Dashboard summary: jobs and deployments by state',
          response: { 200: Summary, ...errorResponses(403) },
        },
      },
      async (request) => {
        const auth = authOf(request);
        const [jobs, deployments] = await Promise.all([dashboardSummary(deps, auth), deploymentSummary(deps, auth)]);
        return { ...jobs, ...deployments };
      },
    );
  };
}
