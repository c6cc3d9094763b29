// Deployments and environments as the API and the event streams show them.
import { iso } from '../../platform/http/schemas.js';
import type { DeploymentRow } from './deployments.queries.js';
import type { EnvironmentRow, EnvironmentSpec } from './environments.queries.js';

export function deploymentEventData(d: DeploymentRow): Record<string, unknown> {
  return {
    deployment_id: d.id,
    project_id: d.project_id,
    run_id: d.run_id,
    job_id: d.job_id,
    approval_id: d.approval_id,
    service: d.service,
    version: d.version,
    environment: d.environment,
    state: d.state,
    reason: d.reason,
  };
}

export function presentDeployment(d: DeploymentRow) {
  return {
    id: d.id,
    project_id: d.project_id,
    service: d.service,
    version: d.version,
    environment: d.environment,
    state: d.state,
    reason: d.reason,
    run_id: d.run_id,
    step_key: d.step_key,
    artifact_id: d.artifact_id,
    job_id: d.job_id,
    approval_id: d.approval_id,
    rollback_of: d.rollback_of,
    promoted_from: d.promoted_from,
    pool: d.pool,
    commands: d.commands,
    created_by: d.created_by,
    created_at: iso(d.created_at),
    started_at: iso(d.started_at),
    finished_at: iso(d.finished_at),
    duration_seconds: d.started_at && d.finished_at ? (d.finished_at.getTime() - d.started_at.getTime()) / 1000 : null,
  };
}
export type DeploymentView = ReturnType<typeof presentDeployment>;

/** `saved: false` for the defaults of a project that has not configured any (they are saved on first use). */
export function presentEnvironment(e: EnvironmentSpec & Partial<Pick<EnvironmentRow, 'created_at' | 'updated_at'>>) {
  return {
    name: e.name,
    requires_approval: e.requires_approval,
    approval_roles: e.approval_roles,
    approval_user_ids: e.approval_user_ids,
    approval_expires_in_seconds: e.approval_expires_in_seconds,
    requires_passed: e.requires_passed,
    pool: e.pool,
    tags: e.tags,
    commands: e.commands,
    timeout_seconds: e.timeout_seconds,
    saved: e.created_at !== undefined,
    created_at: e.created_at ? iso(e.created_at) : null,
    updated_at: e.updated_at ? iso(e.updated_at) : null,
  };
}
