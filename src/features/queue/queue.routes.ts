import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { Page, PageQuery, errorResponses } from '../../platform/http/schemas.js';
import { listJobsPage } from './jobs.service.js';
import { runMaintenance } from './queue.maintenance.js';
import { ClaimBody, ClaimedJob, Job, QueueStats, ReportResult, ReportsBody } from './queue.schemas.js';
import { queueStats } from './stats.service.js';
import { applyReports, type ReportResult as AppliedReport } from './reports.service.js';
import { claim } from './work.service.js';

export function queueRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['queue'];
    // Parked long-polls must not hold a graceful shutdown: release them as it begins.
    app.addHook('preClose', async () => deps.queue.wakeups.close());

    app.post(
      '/claim',
      {
        config: { permission: 'agent:work' },
        schema: {
          tags: [...tags, 'agent protocol'],
          summary:
            'Claim up to `max` jobs (agent token); with `wait_seconds`, long-poll until work arrives (204 if none). ' +
            '`start` claims straight to running; `reports` hand in finished jobs first, in the same round trip.',
          body: ClaimBody,
          response: {
            200: Type.Object({
              jobs: Type.Array(ClaimedJob),
              lease_seconds: Type.Integer(),
              results: Type.Optional(
                Type.Array(ReportResult, { description: 'One per report, in order (when reports were sent)' }),
              ),
            }),
            204: Type.Null({ description: 'Nothing to claim (and no reports to answer)' }),
            ...errorResponses(403, 404),
          },
        },
      },
      async (request, reply) => {
        // A client that hangs up ends its long-poll, before anything more is claimed for it.
        const gone = new AbortController();
        const onClose = () => {
          if (!reply.raw.writableFinished) gone.abort();
        };
        reply.raw.once('close', onClose);
        try {
          const answer = await claim(deps, authOf(request), request.body ?? {}, gone.signal);
          if (answer.jobs.length === 0 && !answer.results) return reply.code(204).send(null);
          return answer.results ? { ...answer, results: answer.results.map(withoutRow) } : answer;
        } finally {
          reply.raw.off('close', onClose);
        }
      },
    );

    app.post(
      '/reports',
      {
        config: { permission: 'agent:work' },
        schema: {
          tags: [...tags, 'agent protocol'],
          summary: 'Start, complete or fail many jobs in one call (agent token); each report succeeds or fails alone',
          body: ReportsBody,
          response: { 200: Type.Object({ results: Type.Array(ReportResult) }), ...errorResponses(403) },
        },
      },
      async (request) => ({ results: (await applyReports(deps, authOf(request), request.body.reports)).map(withoutRow) }),
    );

    app.get(
      '/stats',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags,
          summary: 'Queue statistics: depth by state, finished work, wait and run times, failure rate; per pool and priority',
          querystring: Type.Object(
            {
              pool: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9._:-]{0,62}$' })),
              window_minutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 1440, default: 60 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: QueueStats, ...errorResponses(403, 404) },
        },
      },
      (request) => queueStats(deps, authOf(request), request.query),
    );

    app.get(
      '/dead-letters',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags,
          summary: 'Dead-lettered jobs (retries exhausted), newest first; redrive with POST /jobs/{id}/redrive',
          querystring: Type.Object(PageQuery, { additionalProperties: false }),
          response: { 200: Page(Job), ...errorResponses(403) },
        },
      },
      (request) => listJobsPage(deps, authOf(request), { ...request.query, state: 'dead_lettered' }),
    );

    app.post(
      '/maintenance/requeue-expired',
      {
        config: { permission: 'queue:admin' },
        schema: {
          tags,
          summary: 'Run the reaper now for your organization: due jobs, lost agents, lapsed leases, timeouts',
          response: {
            200: Type.Object({
              promoted: Type.Integer(),
              agents_lost: Type.Integer(),
              leases_expired: Type.Integer(),
              timed_out: Type.Integer(),
              cancels_forced: Type.Integer(),
            }),
            ...errorResponses(403),
          },
        },
      },
      (request) => runMaintenance(deps, authOf(request).orgId),
    );
  };
}

/** A report's answer without the job row the service keeps for its callers. */
function withoutRow(result: AppliedReport) {
  if (!result.ok) return result;
  const { job: _job, ...answer } = result;
  return answer;
}
