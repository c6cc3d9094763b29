// Webhook triggers: a GitHub or GitLab delivery, authenticated by the project's secret
// alone, starts a run for the pushed branch and commit — once per delivery id.
import { createHash } from 'node:crypto';
import type { AuthContext } from '../../platform/auth.js';
import { systemContext } from '../../platform/auth.js';
import type { AppDeps } from '../../platform/deps.js';
import { AppError, BadRequestError, ConflictError, NotFoundError, UnauthorizedError } from '../../platform/errors.js';
import { decodeCursor, encodeCursor, iso } from '../../platform/http/schemas.js';
import { recordAudit } from '../audit/audit.record.js';
import { findProject } from '../projects/projects.queries.js';
import { triggerRun } from '../runs/runs.service.js';
import {
  DECOY_SECRET,
  githubSignatureValid,
  gitlabTokenValid,
  newWebhookSecret,
  openSecret,
  sealSecret,
} from './webhooks.crypto.js';
import { decideGithub, decideGitlab, parseBody, type HookDecision, type Provider } from './webhooks.events.js';
import {
  claimDelivery,
  findDelivery,
  findSecretOfProject,
  listDeliveries,
  retakeDelivery,
  settleDelivery,
  upsertSecret,
  type DeliveryRow,
  type DeliveryView,
} from './webhooks.queries.js';

/** A delivery still `received` this long after it arrived was abandoned (the server stopped). */
const ABANDONED_SECONDS = 300;
const EVENT_NAME = /^[A-Za-z0-9 _.-]{1,100}$/;
const DELIVERY_ID = /^[A-Za-z0-9_.:-]{1,200}$/;

/** Admins: a new secret for the project's webhooks, answered once; the previous one stops working. */
export async function rotateWebhookSecret(deps: Pick<AppDeps, 'db' | 'jwtSecret'>, auth: AuthContext, projectId: string) {
  const secret = newWebhookSecret();
  const replaced = await deps.db.transaction(async (tx) => {
    if (!(await findProject(tx, auth.orgId, projectId, { forUpdate: true }))) throw new NotFoundError('Project');
    const sealed = sealSecret(deps.jwtSecret, projectId, secret);
    const replaced = await upsertSecret(tx, { orgId: auth.orgId, projectId, sealed, createdBy: auth.actor.label });
    await recordAudit(tx, auth, {
      action: 'project.webhook_secret_rotated',
      resource: ['project', projectId],
      projectId,
      details: { replaced },
    });
    return replaced;
  });
  return { secret, replaced, github_url: `/api/v1/hooks/github/${projectId}`, gitlab_url: `/api/v1/hooks/gitlab/${projectId}` };
}

export interface HookRequest {
  projectId: string;
  headers: Record<string, string | string[] | undefined>;
  raw: Buffer;
}

export interface HookAnswer {
  status: 200 | 201 | 202;
  body: {
    delivery_id: string;
    event: string;
    action: string | null;
    outcome: string;
    reason: string | null;
    run_id: string | null;
    run_number: number | null;
    duplicate: boolean;
    zen?: string | null;
  };
}

const header = (h: HookRequest['headers'], name: string) => {
  const value = h[name];
  return Array.isArray(value) ? value[0] : value;
};

/** Unknown project, no secret, undecryptable secret, wrong signature: one indistinguishable 401. */
function refuse(): never {
  throw new UnauthorizedError('The webhook signature is missing or does not match.', 'invalid_signature');
}

function authenticate(
  deps: Pick<AppDeps, 'jwtSecret'>,
  provider: Provider,
  req: HookRequest,
  row: { sealed: Buffer } | undefined,
) {
  const secret = row ? openSecret(deps.jwtSecret, req.projectId, row.sealed) : null;
  const valid =
    provider === 'github'
      ? githubSignatureValid(secret ?? DECOY_SECRET, req.raw, header(req.headers, 'x-hub-signature-256'))
      : gitlabTokenValid(secret ?? DECOY_SECRET, header(req.headers, 'x-gitlab-token'));
  if (!valid || secret === null) refuse();
}

function deliveryIdOf(provider: Provider, req: HookRequest): string {
  const given =
    provider === 'github'
      ? header(req.headers, 'x-github-delivery')
      : (header(req.headers, 'x-gitlab-event-uuid') ?? header(req.headers, 'idempotency-key'));
  if (given !== undefined) {
    if (!DELIVERY_ID.test(given)) throw new BadRequestError('The delivery id header is not valid.', 'invalid_delivery_id');
    return given;
  }
  if (provider === 'github') throw new BadRequestError('X-GitHub-Delivery is required.', 'missing_delivery_id');
  // Older GitLab sends no delivery id: the same body is the same event (it names its commits).
  return `sha256:${createHash('sha256').update(req.raw).digest('hex')}`;
}

function answer(
  d: DeliveryRow & { run_number?: number | null },
  duplicate: boolean,
  extra: { zen?: string | null } = {},
): HookAnswer {
  const status = d.outcome === 'started' ? (duplicate ? 200 : 201) : d.outcome === 'pong' ? 200 : 202;
  return {
    status,
    body: {
      delivery_id: d.delivery_id,
      event: d.event,
      action: d.action,
      outcome: d.outcome,
      reason: d.reason,
      run_id: d.run_id,
      run_number: d.run_number ?? null,
      duplicate,
      ...extra,
    },
  };
}

/** Starts the run a claimed delivery asks for; records what happened either way. */
async function act(deps: AppDeps, delivery: DeliveryRow, decision: HookDecision, provider: Provider): Promise<HookAnswer> {
  if (decision.kind !== 'run') {
    const outcome = decision.kind === 'pong' ? 'pong' : 'ignored';
    const reason = decision.kind === 'ignore' ? decision.reason : null;
    await settleDelivery(deps.db, delivery.id, { outcome, reason, runId: null });
    const zen = decision.kind === 'pong' ? { zen: decision.zen } : {};
    return answer({ ...delivery, outcome, reason }, false, zen);
  }
  const auth = systemContext(delivery.org_id, `webhook:${provider}`);
  try {
    const run = await triggerRun(deps, auth, delivery.project_id, {
      branch: decision.branch,
      commit: decision.commit,
      message: decision.message,
      trigger: 'webhook',
      event: decision.event,
    });
    await settleDelivery(deps.db, delivery.id, { outcome: 'started', reason: null, runId: run.id });
    return answer({ ...delivery, outcome: 'started', run_id: run.id, run_number: run.number }, false);
  } catch (error) {
    // The provider cannot fix our configuration: a project without a pipeline is "accepted, nothing to run".
    if (error instanceof ConflictError && error.code === 'no_pipeline') {
      const reason = error.detail ?? 'This project has no pipeline yet.';
      await settleDelivery(deps.db, delivery.id, { outcome: 'ignored', reason, runId: null });
      return answer({ ...delivery, outcome: 'ignored', reason }, false);
    }
    const reason = error instanceof AppError ? (error.detail ?? error.title) : 'internal error while creating the run';
    await settleDelivery(deps.db, delivery.id, { outcome: 'failed', reason, runId: null });
    if (error instanceof AppError && error.status < 500) return answer({ ...delivery, outcome: 'failed', reason }, false);
    // Ours: a 500, so the provider shows the failure and a redelivery may try again.
    throw error;
  }
}

export async function receiveHook(deps: AppDeps, provider: Provider, req: HookRequest): Promise<HookAnswer> {
  const row = await findSecretOfProject(deps.db, req.projectId);
  authenticate(deps, provider, req, row);
  const org = row!.org_id;

  const event = header(req.headers, provider === 'github' ? 'x-github-event' : 'x-gitlab-event');
  if (!event || !EVENT_NAME.test(event)) {
    throw new BadRequestError(
      `The ${provider === 'github' ? 'X-GitHub-Event' : 'X-Gitlab-Event'} header is missing or not valid.`,
      'missing_event',
    );
  }
  const deliveryId = deliveryIdOf(provider, req);
  const body = parseBody(req.raw, provider === 'github' ? header(req.headers, 'content-type') : 'application/json');
  const decision = provider === 'github' ? decideGithub(event, body) : decideGitlab(event, body);
  const fields = {
    org_id: org,
    project_id: req.projectId,
    provider,
    delivery_id: deliveryId,
    event,
    action: decision.action,
    branch: decision.kind === 'run' ? decision.branch : null,
    commit: decision.kind === 'run' ? decision.commit : null,
  };
  let delivery = await claimDelivery(deps.db, fields);
  if (!delivery) {
    const earlier = (await findDelivery(deps.db, req.projectId, provider, deliveryId))!;
    delivery = await retakeDelivery(deps.db, earlier.id, ABANDONED_SECONDS);
    // A replay: the earlier answer, and no second run.
    if (!delivery) return answer(earlier, true);
  }
  return act(deps, delivery, decision, provider);
}

export function presentDelivery(d: DeliveryView) {
  return {
    id: d.id,
    provider: d.provider,
    delivery_id: d.delivery_id,
    event: d.event,
    action: d.action,
    outcome: d.outcome,
    reason: d.reason,
    branch: d.branch,
    commit: d.commit,
    run_id: d.run_id,
    run_number: d.run_number,
    received_at: iso(d.received_at),
    updated_at: iso(d.updated_at),
  };
}

export async function listDeliveriesPage(
  deps: Pick<AppDeps, 'db'>,
  auth: AuthContext,
  projectId: string,
  q: { limit?: number; cursor?: string; provider?: Provider; outcome?: string },
) {
  if (!(await findProject(deps.db, auth.orgId, projectId))) throw new NotFoundError('Project');
  const limit = q.limit ?? 50;
  const cursor = q.cursor ? decodeCursor(q.cursor, 2) : undefined;
  const [at, id] = cursor ?? [];
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  if (cursor && (typeof at !== 'string' || Number.isNaN(Date.parse(at)) || typeof id !== 'string' || !uuid.test(id))) {
    decodeCursor('', 2); // the same 400 as any bad cursor
  }
  const rows = await listDeliveries(deps.db, {
    orgId: auth.orgId,
    projectId,
    provider: q.provider,
    outcome: q.outcome,
    before: cursor ? { at: at as string, id: id as string } : undefined,
    limit: limit + 1,
  });
  const page = rows.slice(0, limit).map(presentDelivery);
  const last = page.at(-1);
  return { items: page, next_cursor: rows.length > limit && last ? encodeCursor([last.received_at, last.id]) : null };
}
