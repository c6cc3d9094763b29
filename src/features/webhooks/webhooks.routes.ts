import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, Page, PageQuery, Timestamp, Uuid, errorResponses } from '../../platform/http/schemas.js';
import type { Provider } from './webhooks.events.js';
import { listDeliveriesPage, receiveHook, rotateWebhookSecret } from './webhooks.service.js';

/** GitHub caps a delivery at 25 MB; GitLab's are smaller. */
export const HOOK_BODY_LIMIT = 25 * 1024 * 1024;

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const ProviderName = Type.Union([Type.Literal('github'), Type.Literal('gitlab')]);

const HookAnswer = Type.Object({
  delivery_id: Type.String(),
  event: Type.String(),
  action: Nullable(Type.String()),
  outcome: Type.String({ description: 'started, ignored, pong, failed' }),
  reason: Nullable(Type.String({ description: 'Why nothing started' })),
  run_id: Nullable(Uuid),
  run_number: Nullable(Type.Integer()),
  duplicate: Type.Boolean({ description: 'A replayed delivery id: the earlier outcome, no second run' }),
  zen: Type.Optional(Nullable(Type.String())),
});

const Delivery = Type.Object({
  id: Uuid,
  provider: ProviderName,
  delivery_id: Type.String(),
  event: Type.String(),
  action: Nullable(Type.String()),
  outcome: Type.String({ description: 'received (being handled), started, ignored, pong, failed' }),
  reason: Nullable(Type.String()),
  branch: Nullable(Type.String()),
  commit: Nullable(Type.String()),
  run_id: Nullable(Uuid),
  run_number: Nullable(Type.Integer()),
  received_at: Timestamp,
  updated_at: Timestamp,
});

const HOOKS: Record<Provider, { summary: string; description: string }> = {
  github: {
    summary: 'GitHub webhook: push and pull_request start a run (signed with the project’s secret)',
    description:
      'Authenticated only by `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the project’s webhook secret), checked ' +
      'before the body is parsed; a wrong or missing signature and an unknown project are the same 401. `X-GitHub-Event`: ' +
      '`ping` → 200 pong; `push` to a branch → 201 run (tags and deleted branches → 202 ignored); `pull_request` ' +
      'opened/synchronize/reopened → 201 run of the head branch and commit; anything else → 202. A repeated ' +
      '`X-GitHub-Delivery` → 200 with the earlier outcome, no second run. Content type `application/json` or ' +
      '`application/x-www-form-urlencoded` (the `payload` field).',
  },
  gitlab: {
    summary: 'GitLab webhook: Push Hook and Merge Request Hook start a run (X-Gitlab-Token is the project’s secret)',
    description:
      'Authenticated only by `X-Gitlab-Token` (compared in constant time); a wrong or missing token and an unknown project ' +
      'are the same 401. `Push Hook` to a branch → 201 run of `checkout_sha`; `Merge Request Hook` open/reopen, or update ' +
      'with new commits → 201 run of the source branch’s last commit (event `pull_request`); anything else → 202. ' +
      'Deduplicated by `X-Gitlab-Event-UUID` (or `Idempotency-Key`, or the body’s hash).',
  },
};

export function webhookRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    // The hooks read the raw bytes (the signature covers them exactly), whatever the content
    // type; this child plugin only.
    await app.register(async (hooks) => {
      hooks.removeAllContentTypeParsers();
      hooks.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: HOOK_BODY_LIMIT }, (_request, body, done) =>
        done(null, body),
      );
      for (const provider of ['github', 'gitlab'] as const) {
        hooks.post(
          `/hooks/${provider}/:project`,
          {
            config: { permission: 'public' },
            bodyLimit: HOOK_BODY_LIMIT,
            schema: {
              tags: ['webhooks'],
              ...HOOKS[provider],
              params: Type.Object({ project: Type.String({ format: 'uuid', description: 'The project’s id' }) }),
              body: {
                content: { 'application/json': { schema: Type.Unknown({ description: `The ${provider} event payload` }) } },
              },
              response: { 200: HookAnswer, 201: HookAnswer, 202: HookAnswer, ...errorResponses(401, 413) },
            },
          },
          async (request, reply) => {
            const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
            // The content-keyed body schema hides the params' type from the provider; the schema checked them.
            const { project } = request.params as { project: string };
            const result = await receiveHook(deps, provider, { projectId: project, headers: request.headers, raw });
            return reply.code(result.status).send(result.body);
          },
        );
      }
    });

    app.post(
      '/projects/:id/webhook-secret',
      {
        config: { permission: 'queue:admin' },
        schema: {
          tags: ['webhooks'],
          summary: 'Admins: a new webhook secret for the project (shown once; the previous one stops working)',
          description: 'Paste it as the secret of a GitHub webhook, or the secret token of a GitLab one, with the URL answered.',
          params: IdParams,
          response: {
            201: Type.Object({
              secret: Type.String(),
              replaced: Type.Boolean({ description: 'An earlier secret existed and no longer works' }),
              github_url: Type.String({ description: 'Path of the GitHub hook (prefix your server’s address)' }),
              gitlab_url: Type.String(),
            }),
            ...errorResponses(403, 404),
          },
        },
      },
      async (request, reply) => reply.code(201).send(await rotateWebhookSecret(deps, authOf(request), request.params.id)),
    );

    app.get(
      '/projects/:id/webhook-deliveries',
      {
        config: { permission: 'audit:read' },
        schema: {
          tags: ['webhooks'],
          summary: 'Admins: webhook deliveries the project received, newest first, with what each came to',
          params: IdParams,
          querystring: Type.Object(
            {
              ...PageQuery,
              provider: Type.Optional(ProviderName),
              outcome: Type.Optional(
                Type.Union(['received', 'started', 'ignored', 'pong', 'failed'].map((o) => Type.Literal(o))),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 200: Page(Delivery), ...errorResponses(403, 404) },
        },
      },
      (request) => listDeliveriesPage(deps, authOf(request), request.params.id, request.query),
    );
  };
}
