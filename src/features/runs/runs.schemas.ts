import { Type } from 'typebox';
import { Timestamp } from '../../platform/http/schemas.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const RunStateName = Type.Enum(['running', 'blocked', 'passed', 'failed', 'canceled']);

export const Step = Type.Object({
  key: Type.String(),
  label: Type.String(),
  type: Type.Enum(['command', 'block', 'deploy']),
  state: Type.Enum(['waiting', 'running', 'blocked', 'passed', 'failed', 'canceled', 'skipped']),
  reason: Nullable(
    Type.String({ description: 'Why it waits, was skipped or canceled: concurrency, condition, dependency, forced…' }),
  ),
  needs: Type.Array(Type.String()),
  job_id: Nullable(Type.String()),
  approval_id: Nullable(Type.String()),
  deployment_id: Nullable(Type.String()),
  concurrency_group: Nullable(Type.String()),
  jobs_started: Type.Integer(),
  started_at: Nullable(Timestamp),
  finished_at: Nullable(Timestamp),
});

const RunFields = {
  id: Type.String({ format: 'uuid' }),
  project_id: Type.String({ format: 'uuid' }),
  number: Type.Integer({ description: 'Counts per project' }),
  state: RunStateName,
  complete: Type.Boolean({ description: 'Every step has finished' }),
  trigger: Type.String({ description: 'api, cli, schedule, webhook, rerun' }),
  branch: Nullable(Type.String()),
  commit: Nullable(Type.String()),
  message: Nullable(Type.String()),
  event: Nullable(Type.String()),
  env: Type.Record(Type.String(), Type.String()),
  pipeline_version_id: Nullable(Type.String()),
  rerun_of: Nullable(Type.String()),
  created_by: Type.String(),
  created_at: Timestamp,
  finished_at: Nullable(Timestamp),
  duration_seconds: Nullable(Type.Number()),
  forced_by: Nullable(Type.String()),
};
export const RunSummary = Type.Object(RunFields);
export const Run = Type.Object({ ...RunFields, steps: Type.Array(Step) });

export const TriggerBody = Type.Object(
  {
    branch: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    commit: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{4,64}$' })),
    message: Type.Optional(Type.String({ maxLength: 10_000 })),
    env: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' }), Type.String({ maxLength: 32_768 }), {
        maxProperties: 128,
        description: 'Overrides for every command step (not secret)',
      }),
    ),
  },
  { additionalProperties: false },
);

export const Completion = Type.Object({
  complete: Type.Boolean({ description: 'No run of the project is running or blocked' }),
  runs: Type.Integer(),
  active_runs: Type.Integer(),
  steps_remaining: Type.Integer(),
  jobs: Type.Integer(),
  live_jobs: Type.Integer(),
  last_run_at: Nullable(Timestamp),
});
