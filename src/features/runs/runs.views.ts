// Runs and steps as the API shows them.
import { iso } from '../../platform/http/schemas.js';
import type { RunRow, StepRow } from './runs.queries.js';

export function presentStep(s: StepRow) {
  return {
    key: s.key,
    label: s.definition.label,
    type: s.type,
    state: s.state,
    reason: s.reason,
    needs: s.needs,
    job_id: s.job_id,
    approval_id: s.approval_id,
    deployment_id: s.deployment_id,
    concurrency_group: s.concurrency_group,
    jobs_started: s.jobs_started,
    started_at: iso(s.started_at),
    finished_at: iso(s.finished_at),
  };
}

export function presentRunSummary(r: RunRow) {
  return {
    id: r.id,
    project_id: r.project_id,
    number: r.number,
    state: r.state,
    // A run is complete when every step has finished (passed, failed, canceled or skipped).
    complete: ['passed', 'failed', 'canceled'].includes(r.state),
    trigger: r.trigger,
    branch: r.branch,
    commit: r.commit,
    message: r.message,
    event: r.event,
    env: r.env,
    pipeline_version_id: r.pipeline_version_id,
    rerun_of: r.rerun_of,
    created_by: r.created_by,
    created_at: iso(r.created_at),
    finished_at: iso(r.finished_at),
    duration_seconds: r.finished_at ? (r.finished_at.getTime() - r.created_at.getTime()) / 1000 : null,
    forced_by: r.forced_by,
  };
}

export function presentRun(r: RunRow, steps: readonly StepRow[]) {
  return { ...presentRunSummary(r), steps: steps.map(presentStep) };
}
export type RunView = ReturnType<typeof presentRun>;
