// The deployments API: create (deploy a version to an environment), promote (the same
// version to the next environment), roll back (redeploy the last good version before),
// cancel, read, list, what runs now, and the dashboard's counts. The rules of an
// environment are checked here, for people and pipelines alike (the deploy step calls
// `deployInTx`).
import type { AuthContext } from '../../platform/auth.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects, type AfterCommit } from '../../platform/effects.js';
import { BadRequestError, ConflictError, NotFoundError } from '../../platform/errors.js';
import { decodeCursor, encodeCursor } from '../../platform/http/schemas.js';
import { findArtifact } from '../artifacts/artifacts.queries.js';
import { findProject } from '../projects/projects.queries.js';
import { findRun } from '../runs/runs.queries.js';
import {
  cancelDeploymentInTx,
  FINAL_DEPLOYMENT_STATES,
  lockForCancel,
  openDeploymentInTx,
  settleDeployment,
  type DeploymentSpec,
} from './deployments.lifecycle.js';
import {
  currentDeployments,
  deploymentCounts,
  findDeployment,
  hasSucceeded,
  lastSucceededBefore,
  listDeployments,
  type DeploymentRow,
} from './deployments.queries.js';
import type { EnvironmentRow } from './environments.queries.js';
import { presentDeployment } from './deployments.views.js';
import { environmentFor, savedEnvironments } from './environments.service.js';

interface Ctx {
  deps: AppDeps;
  tx: Queryable;
  after: AfterCommit;
  auth: AuthContext;
}

export interface DeployRequest {
  projectId: string;
  service: string;
  version: string;
  environment: string;
  commands?: string[];
  runId?: string | null;
  stepKey?: string | null;
  artifactId?: string | null;
  promotedFrom?: string | null;
}

/** The environment's rules, then the deployment: `requires_passed`, deploy commands, approval. */
export async function deployInTx(ctx: Ctx, req: DeployRequest): Promise<DeploymentRow> {
  const env = await environmentFor(ctx.tx, ctx.auth.orgId, req.projectId, req.environment);
  await checkPassed(ctx.tx, env, req);
  return openDeploymentInTx(ctx, { ...req, environment: env, commands: commandsFor(env, req.commands) });
}

async function checkPassed(tx: Queryable, env: EnvironmentRow, req: Pick<DeployRequest, 'projectId' | 'service' | 'version'>) {
  const required = env.requires_passed;
  if (!required || (await hasSucceeded(tx, { ...req, environment: required }))) return;
  throw new ConflictError(
    `${req.service} ${req.version} has not passed ${required}: ${env.name} only takes versions that deployed successfully to ${required} first.`,
    'not_passed_required_environment',
    { required_environment: required },
  );
}

function commandsFor(env: EnvironmentRow, given: string[] | undefined): string[] {
  const commands = given?.length ? given : env.commands;
  if (commands.length === 0) {
    throw new ConflictError(
      `Environment "${env.name}" has no deploy commands: set them with PUT /api/v1/projects/{id}/environments/${env.name}, or give commands with the deployment.`,
      'no_deploy_commands',
    );
  }
  return commands;
}

export interface CreateBody {
  project_id: string;
  service: string;
  version: string;
  environment: string;
  run_id?: string;
  artifact_id?: string;
  commands?: string[];
}

export async function createDeployment(deps: AppDeps, auth: AuthContext, body: CreateBody) {
  if (!(await findProject(deps.db, auth.orgId, body.project_id))) {
    throw new BadRequestError(`There is no project ${body.project_id}.`, 'unknown_project');
  }
  if (body.run_id && (await findRun(deps.db, auth.orgId, body.run_id))?.project_id !== body.project_id) {
    throw new BadRequestError(`Run ${body.run_id} is not a run of this project.`, 'unknown_run');
  }
  if (body.artifact_id) {
    const artifact = await findArtifact(deps.db, auth.orgId, body.artifact_id);
    if (!artifact || (artifact.project_id && artifact.project_id !== body.project_id)) {
      throw new BadRequestError(`Artifact ${body.artifact_id} is not an artifact of this project.`, 'unknown_artifact');
    }
  }
  const row = await transactionWithEffects(deps.db, (tx, after) =>
    deployInTx(
      { deps, tx, after, auth },
      {
        projectId: body.project_id,
        service: body.service,
        version: body.version,
        environment: body.environment,
        commands: body.commands,
        runId: body.run_id ?? null,
        artifactId: body.artifact_id ?? null,
      },
    ),
  );
  return presentDeployment(row);
}

async function requireDeployment(deps: Pick<AppDeps, 'db'>, auth: AuthContext, id: string): Promise<DeploymentRow> {
  const row = await findDeployment(deps.db, auth.orgId, id);
  if (!row) throw new NotFoundError('Deployment');
  return row;
}

/** The same version of the same service to another environment (default: the one that requires this one's). */
export async function promoteDeployment(deps: AppDeps, auth: AuthContext, id: string, body: { environment?: string }) {
  const source = await requireDeployment(deps, auth, id);
  const row = await transactionWithEffects(deps.db, async (tx, after) => {
    let target = body.environment;
    if (!target) {
      const next = (await savedEnvironments(tx, auth.orgId, source.project_id)).filter(
        (e) => e.requires_passed === source.environment,
      );
      if (next.length !== 1) {
        throw new BadRequestError(
          `Say which environment to promote to: ${next.length ? next.map((e) => e.name).join(' or ') : `no environment follows ${source.environment}`}.`,
          'environment_required',
        );
      }
      target = next[0]!.name;
    }
    return deployInTx(
      { deps, tx, after, auth },
      {
        projectId: source.project_id,
        service: source.service,
        version: source.version,
        environment: target,
        runId: source.run_id,
        artifactId: source.artifact_id,
        promotedFrom: source.id,
      },
    );
  });
  return presentDeployment(row);
}

/**
 * Redeploys, as a new deployment, the last version of the service that succeeded in the
 * environment before this deployment (with the commands that deployed it then). Needs the
 * environment's approval like any deployment; its `requires_passed` rule is moot.
 */
export async function rollbackDeployment(deps: AppDeps, auth: AuthContext, id: string) {
  const d = await requireDeployment(deps, auth, id);
  const previous = await lastSucceededBefore(deps.db, d, d.finished_at ?? new Date(), d.version);
  if (!previous) {
    throw new ConflictError(
      `There is no earlier successful version of ${d.service} in ${d.environment} to roll back to.`,
      'nothing_to_roll_back_to',
    );
  }
  const row = await transactionWithEffects(deps.db, async (tx, after) => {
    const env = await environmentFor(tx, auth.orgId, d.project_id, d.environment);
    const spec: DeploymentSpec = {
      projectId: d.project_id,
      service: d.service,
      version: previous.version,
      environment: env,
      commands: previous.commands,
      artifactId: previous.artifact_id,
      rollbackOf: d.id,
    };
    return openDeploymentInTx({ deps, tx, after, auth }, spec);
  });
  return presentDeployment(row);
}

export async function cancelDeployment(deps: AppDeps, auth: AuthContext, id: string, reason?: string) {
  await requireDeployment(deps, auth, id);
  const row = await transactionWithEffects(deps.db, async (tx, after) => {
    const d = (await lockForCancel(tx, auth.orgId, id))!;
    if (FINAL_DEPLOYMENT_STATES.includes(d.state)) {
      throw new ConflictError(`The deployment already finished (${d.state}).`, 'deployment_finished');
    }
    return cancelDeploymentInTx({ deps, tx, after, auth }, d, reason ?? `canceled by ${auth.actor.label}`);
  });
  return presentDeployment(row);
}

/** Reads settle a deployment whose job ended, so what a person sees is never behind its job. */
export async function getDeployment(deps: AppDeps, auth: AuthContext, id: string) {
  let row = await requireDeployment(deps, auth, id);
  if (row.state === 'deploying') row = (await settleDeployment(deps, auth.orgId, id)) ?? row;
  return presentDeployment(row);
}

export interface DeploymentListQuery {
  project_id?: string;
  service?: string;
  environment?: string;
  state?: string | string[];
  limit?: number;
  cursor?: string;
}

export async function listDeploymentsPage(deps: Pick<AppDeps, 'db'>, auth: AuthContext, q: DeploymentListQuery) {
  const limit = q.limit ?? 50;
  const cursor = q.cursor ? decodeCursor(q.cursor, 2) : undefined;
  const rows = await listDeployments(deps.db, {
    orgId: auth.orgId,
    projectId: q.project_id,
    service: q.service,
    environment: q.environment,
    states: q.state === undefined ? undefined : [q.state].flat(),
    before: cursor ? { createdAt: String(cursor[0]), id: String(cursor[1]) } : undefined,
    limit: limit + 1,
  });
  const page = rows.slice(0, limit).map(presentDeployment);
  const last = page.at(-1);
  return { items: page, next_cursor: rows.length > limit && last ? encodeCursor([last.created_at, last.id]) : null };
}

/** What each environment of a project runs now, per service: its last succeeded deployment. */
export async function currentVersions(deps: Pick<AppDeps, 'db'>, auth: AuthContext, projectId: string, service?: string) {
  if (!(await findProject(deps.db, auth.orgId, projectId))) throw new NotFoundError('Project');
  const rows = await currentDeployments(deps.db, auth.orgId, projectId, service);
  return {
    items: rows.map((d) => ({
      service: d.service,
      environment: d.environment,
      version: d.version,
      deployment_id: d.id,
      deployed_at: d.finished_at!.toISOString(),
    })),
  };
}

/** Seed 001's deployment figures for the dashboard summary. */
export async function deploymentSummary(deps: Pick<AppDeps, 'db'>, auth: AuthContext) {
  const { by_state, awaiting_promotion } = await deploymentCounts(deps.db, auth.orgId);
  const n = (s: string) => by_state[s] ?? 0;
  return {
    total_deployments: Object.values(by_state).reduce((a, b) => a + b, 0),
    deployments_active: n('pending') + n('awaiting_approval') + n('deploying'),
    deployments_staging: awaiting_promotion,
    deployments_failed: n('failed'),
    deployments_by_state: Object.fromEntries(
      ['pending', 'awaiting_approval', 'deploying', 'succeeded', 'failed', 'canceled', 'rejected'].map((s) => [s, n(s)]),
    ),
  };
}
