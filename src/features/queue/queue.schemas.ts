// TypeBox schemas of the queue's API: what validates requests and shapes responses (and
// becomes the OpenAPI document).
import { Type, type Static, type TSchema } from 'typebox';
import { Timestamp } from '../../platform/http/schemas.js';
import { JOB_STATES, PRIORITIES, type FailureReason } from './queue.model.js';

/**
 * `T` or null, written as a type list (`"type": ["string", "null"]`, JSON Schema and
 * OpenAPI 3.1) rather than `anyOf`: fast-json-stringify serializes a type list with a
 * `typeof` test, where it ran a schema validator over each `anyOf` value of every job it
 * sent (a claim answers with up to 100 jobs of a dozen nullable fields).
 */
const Nullable = <T extends TSchema & { type: string }>(t: T) => Type.Unsafe<Static<T> | null>({ ...t, type: [t.type, 'null'] });
const Uuid = Type.String({ format: 'uuid' });
export const PriorityName = Type.Enum(PRIORITIES, { description: 'CRITICAL > HIGH > NORMAL > LOW; FIFO within a priority' });
export const JobStateName = Type.Enum(JOB_STATES);
const Tags = Type.Record(Type.String({ pattern: '^[A-Za-z0-9._:/-]{1,64}$' }), Type.String({ maxLength: 256 }), {
  maxProperties: 32,
  description: 'Agent tags a job requires, e.g. {"os": "linux"}',
});
const Env = Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' }), Type.String({ maxLength: 32_768 }), {
  maxProperties: 256,
  description: 'Environment that is not secret (secrets live on the agent, never here)',
});
const RetryRules = Type.Object(
  {
    exit_statuses: Type.Optional(
      Type.Union([Type.Array(Type.Integer({ minimum: 1, maximum: 255 }), { maxItems: 64 }), Type.Literal('any')], {
        description: 'Exit statuses worth another attempt, or "any" non-zero one',
      }),
    ),
    reasons: Type.Optional(
      Type.Array(Type.Enum(['agent_lost', 'lease_expired', 'timeout', 'error']), {
        maxItems: 4,
        uniqueItems: true,
        description: 'Other failures worth another attempt (default: agent_lost, lease_expired)',
      }),
    ),
    backoff_seconds: Type.Optional(Type.Number({ minimum: 0.1, maximum: 3600 })),
    max_backoff_seconds: Type.Optional(Type.Number({ minimum: 1, maximum: 86_400 })),
  },
  { additionalProperties: false },
);

export const EnqueueBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    pool: Type.String({ pattern: '^[a-z0-9][a-z0-9._:-]{0,62}$' }),
    priority: Type.Optional(PriorityName),
    project_id: Type.Optional(Nullable(Uuid)),
    tags: Type.Optional(Tags),
    commands: Type.Array(Type.String({ minLength: 1, maxLength: 65_536 }), { minItems: 1, maxItems: 256 }),
    env: Type.Optional(Env),
    artifacts: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), { maxItems: 64 })),
    timeout_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 86_400 })),
    run_at: Type.Optional(Type.String({ format: 'date-time', description: 'Not before this time (delayed job)' })),
    delay_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 30 * 86_400 })),
    max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    retry: Type.Optional(RetryRules),
    idempotency_key: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  },
  { additionalProperties: false },
);

export const Job = Type.Object({
  id: Uuid,
  name: Type.String(),
  state: JobStateName,
  priority: PriorityName,
  pool: Nullable(Type.String()),
  pool_id: Uuid,
  project_id: Nullable(Type.String()),
  run_id: Nullable(Type.String()),
  step_key: Nullable(Type.String()),
  tags: Type.Record(Type.String(), Type.String()),
  commands: Type.Array(Type.String()),
  env: Type.Record(Type.String(), Type.String()),
  artifacts: Type.Array(Type.String()),
  timeout_seconds: Type.Integer(),
  max_attempts: Type.Integer(),
  retry: Type.Object({
    exit_statuses: Type.Union([Type.Array(Type.Integer()), Type.Literal('any')]),
    reasons: Type.Array(Type.String()),
    backoff_seconds: Type.Number(),
    max_backoff_seconds: Type.Number(),
  }),
  attempt: Type.Integer({ description: 'Attempts started so far' }),
  created_by: Type.String(),
  created_at: Timestamp,
  run_at: Timestamp,
  queued_at: Nullable(Timestamp),
  claimed_at: Nullable(Timestamp),
  started_at: Nullable(Timestamp),
  finished_at: Nullable(Timestamp),
  agent_id: Nullable(Type.String()),
  lease_expires_at: Nullable(Timestamp),
  cancel_requested: Type.Boolean(),
  exit_status: Nullable(Type.Integer()),
  failure_reason: Nullable(Type.String()),
  last_failure: Nullable(
    Type.Object(
      { reason: Type.String(), exit_status: Nullable(Type.Integer()), at: Type.String() },
      { additionalProperties: true },
    ),
  ),
  outputs: Nullable(Type.Record(Type.String(), Type.String())),
});

export const ClaimedJob = Type.Object({
  ...Job.properties,
  lease_token: Type.String({ format: 'uuid', description: 'Carry it on every report about this job: it fences stale reports' }),
  job_token: Type.String({
    description: "The job's own credential for its shell (hand-off outputs): valid only while this lease is current",
  }),
});

const Lease = Type.String({ format: 'uuid' });
const Outputs = Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,128}$' }), Type.String({ maxLength: 65_536 }), {
  maxProperties: 128,
});
const Message = Type.String({ maxLength: 4096 });
/** What an agent may report; agent_lost and lease_expired are the server's to decide. */
export const AgentFailureReason = Type.Enum(['exit_status', 'timeout', 'canceled', 'error'] satisfies FailureReason[]);

export const StartBody = Type.Object({ lease_token: Lease }, { additionalProperties: false });
export const CompleteBody = Type.Object(
  {
    lease_token: Lease,
    exit_status: Type.Optional(Type.Integer({ minimum: 0, maximum: 255, description: 'Non-zero counts as a failure' })),
    outputs: Type.Optional(Outputs),
  },
  { additionalProperties: false },
);
export const FailBody = Type.Object(
  {
    lease_token: Lease,
    reason: AgentFailureReason,
    exit_status: Type.Optional(Type.Integer({ minimum: 0, maximum: 255 })),
    message: Type.Optional(Message),
  },
  { additionalProperties: false },
);
const Report = Type.Object(
  {
    job_id: Uuid,
    lease_token: Lease,
    action: Type.Union([Type.Literal('start'), Type.Literal('complete'), Type.Literal('fail')]),
    exit_status: Type.Optional(Type.Integer({ minimum: 0, maximum: 255 })),
    outputs: Type.Optional(Outputs),
    reason: Type.Optional(AgentFailureReason),
    message: Type.Optional(Message),
  },
  { additionalProperties: false },
);
export const ReportsBody = Type.Object(
  { reports: Type.Array(Report, { minItems: 1, maxItems: 500 }) },
  { additionalProperties: false },
);
export const ClaimBody = Type.Object(
  {
    max: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 1 })),
    wait_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 60, default: 0 })),
    start: Type.Optional(
      Type.Boolean({ default: false, description: 'Claim straight to running: no separate start report is needed' }),
    ),
    reports: Type.Optional(
      Type.Array(Report, {
        maxItems: 500,
        description: 'Reports applied before the claim (as POST /queue/reports), answered in `results`',
      }),
    ),
  },
  { additionalProperties: false },
);
export const ReportResult = Type.Object({
  job_id: Type.String(),
  ok: Type.Boolean(),
  state: Type.Optional(Type.String()),
  attempt: Type.Optional(Type.Integer()),
  error: Type.Optional(Type.Object({ status: Type.Integer(), code: Type.String(), detail: Type.String() })),
});

const Figures = {
  scheduled: Type.Integer(),
  queued: Type.Integer(),
  claimed: Type.Integer(),
  running: Type.Integer(),
  blocked: Type.Integer(),
  completed: Type.Integer(),
  failed: Type.Integer(),
  dead_lettered: Type.Integer(),
  canceled: Type.Integer(),
  timed_out: Type.Integer(),
  retried: Type.Integer(),
  avg_wait_seconds: Nullable(Type.Number()),
  p95_wait_seconds: Nullable(Type.Number()),
  avg_execution_seconds: Nullable(Type.Number()),
  p95_execution_seconds: Nullable(Type.Number()),
  failure_rate: Type.Number(),
};
export const QueueStats = Type.Object({
  window_minutes: Type.Integer({ description: 'Finished-work figures cover this window; live ones are now' }),
  ...Figures,
  by_pool: Type.Array(Type.Object({ pool_id: Type.String(), ...Figures })),
  by_priority: Type.Array(Type.Object({ priority: Type.String(), ...Figures })),
});
